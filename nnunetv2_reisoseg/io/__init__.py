"""Files shared by every command: ``volumes`` (readers of EM volumes with their voxel size) and ``folders``
(folders written in full or not at all)."""
