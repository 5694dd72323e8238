"""volt_enforce: the Volt isolation model, enforced by the Linux kernel.

Landlock rules, seccomp BPF filters and cgroup limits, plus no_new_privs,
capability drops and namespaces, prepared in the parent and applied to a child
(or to this process) by a small C core.
"""

from .errors import CompatibilityError, EnforcementError, PolicyError, VoltEnforceError
from .model import (
    CAPABILITIES,
    DOCKER_DEFAULT_CAPABILITIES,
    Compatibility,
    IsolationConfig,
    LandlockAccess,
    LandlockLogging,
    LandlockPolicy,
    LandlockRule,
    LandlockScope,
    MissingPaths,
    NetworkConfig,
    NetworkMode,
    PortForward,
    ResourceLimits,
    SeccompProfile,
    default_isolation,
    default_network_config,
    default_resource_limits,
    desktop_policy,
    parse_cpuset,
    parse_size,
    server_policy,
)
from .kernel import Probe, landlock_abi, probe
from .sandbox import EnforcementReport, Popen, Sandbox, apply_self, run

__version__ = "0.1.0"

__all__ = [
    "CAPABILITIES",
    "DOCKER_DEFAULT_CAPABILITIES",
    "Compatibility",
    "CompatibilityError",
    "EnforcementError",
    "EnforcementReport",
    "IsolationConfig",
    "LandlockAccess",
    "LandlockLogging",
    "LandlockPolicy",
    "LandlockRule",
    "LandlockScope",
    "MissingPaths",
    "NetworkConfig",
    "NetworkMode",
    "PolicyError",
    "Popen",
    "PortForward",
    "Probe",
    "ResourceLimits",
    "Sandbox",
    "SeccompProfile",
    "VoltEnforceError",
    "apply_self",
    "default_isolation",
    "default_network_config",
    "default_resource_limits",
    "desktop_policy",
    "landlock_abi",
    "parse_cpuset",
    "parse_size",
    "probe",
    "run",
    "server_policy",
]
