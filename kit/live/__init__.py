"""The workshop's services as real processes on this machine (`python -m kit.live`), and the
local trace viewer they serve (`viewer/`). `system.py` starts and stops the processes; each one
runs `service.py`, which also keeps the service's log lines and metrics beside its spans
(`capture.py`); `client.py` sends orders."""
