"""Data tools: ``synth`` (synthetic serial-section EM with isotropic truth), ``convert`` (EM volumes into an
nnU-Net raw dataset) and ``raw_dataset`` (staged writing of raw datasets)."""
