"""The Docker tests run in the Docker pass of `./ucj test` (deploy/docker/engine.sh pass, with
UCJ_COMPOSE_TEST=1), where a Docker engine and the project's images are there; the main run
does not collect them (tests/conftest.py). Asked for, a missing engine or image is a failure,
never a skip."""
