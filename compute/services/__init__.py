"""Every state change of compute hosts, the image cache and VMs. Views, admin, the API, jobs and commands
call these; nothing else writes a host's state, a cache entry or a VM's state.

- hosts.py: add a host, reconnect (read its facts through libvirt).
- cache.py: an image's bytes in a host's pool, uploaded once per SHA256; clean-up.
- seed.py: the cloud-init NoCloud seed ISO.
- vms.py: create (wizard and API), provision (job), state refresh, start/stop/reboot/delete, console.
- capture.py: a new image from a stopped VM's disk.
"""
