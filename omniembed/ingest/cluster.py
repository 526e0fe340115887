"""Connecting to Ray: a local single-node Ray on loopback by default, or an existing cluster by address.

By default Ray binds its services to every address of the machine. A single-node Ray started with
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in its environment (read when ray is imported: set here before that) and
the node address 127.0.0.1 listens on loopback only (tests/ingest checks every socket it opens); the
dashboard is not started.
"""

from __future__ import annotations

import logging
import os

LOOPBACK = "127.0.0.1"
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


def connect(address: str | None, cpus: int | None) -> bool:
    """ray.init for an ingest; True when this process started the (local) Ray and so should stop it."""
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False,
             "configure_logging": True}
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        import ray

        ray.init(address=address, **quiet)
        return False
    # read by Ray at import, in this process and in every process it starts: set before importing ray
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # where ray was imported before this call (a user's script)
    # the local Ray keeps its default token auth; its notice about it is not news to an ingest's user
    logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
    ray.init(num_cpus=cpus, _node_ip_address=LOOPBACK, **quiet)
    return True


def quiet_data() -> None:
    """Ray Data without its own progress bars and execution banners: the ingest draws one bar."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
