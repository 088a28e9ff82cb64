"""The Raft consensus core for the metadata log (KRaft's protocol), pure:
no Trio, no sockets, no files, no clock. See core.py."""
