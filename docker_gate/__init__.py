"""docker_gate: the only way into the Docker Engine API; forwards an explicit allow-list of requests.

Nothing maintained fit: the socket proxies that can be installed here (Tecnativa's, linuxserver's)
filter by path only, and the body-inspecting ones are Go or Rust images this project cannot build
from its own package sources. The rules live in one file, `docker_gate/rules.py`.
"""
