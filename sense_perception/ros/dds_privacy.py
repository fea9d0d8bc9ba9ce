"""Keep the OS user name out of the DDS discovery the nodes announce (R93).

Fast DDS, ROS 2 Jazzy's default middleware, built with its statistics module as the ROS packages
are, puts the host name, the OS user name and the process id of each participant ("physical
data") into the discovery messages every participant of the domain receives: a node run by
``alice`` announced ``alice`` (seen on the loopback interface: ``fastdds.physical_data.user``,
``root`` in a test run). Where no Fast DDS profile of the user's own is in force, the processes of
this package start with :data:`PROFILE`, which keeps those properties in the process. A profile of
the user's own is never replaced; it needs the same properties (docs/driver-monitoring.md).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

#: The participant profile that keeps host, user and process id in the process.
PROFILE = Path(__file__).resolve().parents[1] / "data" / "fastdds_private.xml"
#: Where Fast DDS 2 and 3 read a profile file's name from.
PROFILE_ENV = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
#: The profile files Fast DDS reads from the working directory when no variable names one.
CWD_PROFILES = ("DEFAULT_FASTRTPS_PROFILES.xml", "DEFAULT_FASTDDS_PROFILES.xml")


def use_private_participant(environ: MutableMapping[str, str] | None = None,
                            cwd: str | os.PathLike[str] = ".") -> str | None:
    """Point Fast DDS at :data:`PROFILE` before the process's first participant, unless another
    middleware is chosen (``RMW_IMPLEMENTATION``) or a profile of the user's own is in force.

    Returns:
        The profile now in force, or None where nothing was changed.
    """
    env = os.environ if environ is None else environ
    rmw = env.get("RMW_IMPLEMENTATION", "")
    if rmw and "fast" not in rmw.lower():
        return None
    if any(env.get(name) for name in PROFILE_ENV) or any(
            (Path(cwd) / name).exists() for name in CWD_PROFILES):
        return None
    for name in PROFILE_ENV:
        env[name] = str(PROFILE)
    return str(PROFILE)


__all__ = ["CWD_PROFILES", "PROFILE", "PROFILE_ENV", "use_private_participant"]
