"""The built-in guest: a small initramfs with busybox, fio, nvme-cli and dropbear, cached by its inputs."""

from nvmechaos.guest.builder import (
    GuestImage,
    GuestImageError,
    GuestRecipe,
    build_guest,
    default_cache_dir,
)

__all__ = ["GuestImage", "GuestImageError", "GuestRecipe", "build_guest", "default_cache_dir"]
