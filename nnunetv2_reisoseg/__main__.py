from nnunetv2_reisoseg.cli import main

raise SystemExit(main())
