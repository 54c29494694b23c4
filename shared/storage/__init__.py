"""Where the drive's and the binary store's bytes live: one interface (``backend.Storage``) over
two backends, a local folder (``local.py``, the default) and an S3-compatible object store
(``s3.py``: AWS S3, SeaweedFS, MinIO), chosen by ``FLOWBIN_DRIVE_URL`` (``locate.py``).

Keys are logical POSIX paths (``alice/invoices/input/a.txt``), already checked by the drive
(shared/drive.py) when they come from a caller; a backend only maps them to files or objects.
May import config and errors only.
"""
