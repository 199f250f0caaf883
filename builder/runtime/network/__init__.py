"""Container networking: bridge networks (docker's default ``bridge`` and user-defined ones), ``host``,
``none``, published ports, name resolution through hosts files, and the per-RUN network of builds."""

from .build import build_manager, build_netns
from .errors import NetworkError, NoSuchNetwork
from .manager import BUILD_NETWORK, DEFAULT_BRIDGE, NetworkManager, endpoint_id
from .model import Endpoint, Network, PortBinding, PublishedPort
from .ports import parse_publish

__all__ = ["NetworkManager", "Network", "Endpoint", "PortBinding", "PublishedPort", "parse_publish", "build_netns",
           "build_manager", "NetworkError", "NoSuchNetwork", "endpoint_id", "BUILD_NETWORK", "DEFAULT_BRIDGE"]
