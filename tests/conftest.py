import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from image_fixtures import busybox_tar, dockerd  # noqa: E402,F401  (session fixtures of the image tests)
from image_fixtures import debian_gcc_tar  # noqa: E402,F401  (session: the Debian + gcc rootfs tarball)
from registry_fixtures import registry, tls_registry, token_registry, make_registry  # noqa: E402,F401  (real registries)
from registry_fixtures import busybox_archive, registry_busybox  # noqa: E402,F401  (busybox in the session registry)
