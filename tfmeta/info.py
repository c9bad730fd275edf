"""``tfmeta info``: what this installation has -- versions, devices, caches, presets, learners and
which datasets work offline."""

from __future__ import annotations

import os
import platform

from tfmeta.environment import PACKAGES, package_version


def tfds_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(os.path.expanduser("~"),
                                                           "tensorflow_datasets")


def datasets_report(probe_network: bool = False) -> list:
    """Lines on each ``--dataset`` source and whether it works offline (``tfmeta datasets``);
    ``probe_network``: also say whether a download would reach its host now (through the HTTPS
    proxy where one is set)."""
    tfds_dir = tfds_data_dir()
    omniglot = os.path.isdir(os.path.join(tfds_dir, "omniglot"))
    lines = ["datasets offline:",
             "  glyphs              yes (built in: generated on first use, then cached)",
             "  folder:PATH, zip:PATH  yes (your files)",
             "  omniglot-small:DIR, mini-imagenet:DIR  yes (local copies)",
             f"  omniglot            {'yes (prepared)' if omniglot else 'no: downloads on first use'}",
             "  tfds:NAME           if prepared in the TFDS data dir"]
    if probe_network:
        from tfmeta.data.tfds_source import _network_answers

        lines.append("network for downloads: " + (
            "yes" if _network_answers(timeout=3.0) else
            "no (HTTPS_PROXY is used where set): only the offline sources above work"))
    return lines


def report() -> str:
    """The report as text."""
    import tensorflow as tf

    from tfmeta.configs import names
    from tfmeta.data.glyphs import default_cache_dir
    from tfmeta.learners import ALGORITHMS

    cache, tfds_dir = default_cache_dir(), tfds_data_dir()
    cached = sorted(f for f in os.listdir(cache) if f.startswith("glyphs-")) if os.path.isdir(
        cache) else []
    devices = [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}"
               for d in tf.config.list_physical_devices()]
    lines = [f"python {platform.python_version()} on {platform.platform()}"]
    lines += [f"{p:<20} {package_version(p)}" for p in PACKAGES]
    lines += [f"devices: {', '.join(devices)}",
              f"glyphs cache: {cache} ({len(cached)} cached; TFMETA_CACHE_DIR moves it)",
              f"TFDS data: {tfds_dir} (TFDS_DATA_DIR moves it)",
              *datasets_report(),
              f"presets (tfmeta train --config NAME): {', '.join(names())}",
              f"learners (--algorithm): {', '.join(ALGORITHMS)}"]
    return "\n".join(lines)
