"""Episode sampling from memory and from disk (``data.on_disk``): tasks per second of the episode
stream, 5-way 1-shot 15-query meta-batches of 32 on the built-in glyphs (2,400 classes), the
images in one constant or read from a ``.npy`` file (:class:`tfmeta.data.disk.DiskImages`),
interleaved windows in one process. The file is read once before timing, so it is in the
operating system's page cache, as a dataset that fits there is after the first epoch.

Run:  python benchmarks/disk_sampling.py --windows 3 --batches 60
"""

import argparse
import json
import os
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=3, help="timed windows per source")
    p.add_argument("--batches", type=int, default=60, help="meta-batches per window")
    p.add_argument("--meta-batch", type=int, default=32)
    args = p.parse_args()

    import numpy as np

    from tfmeta.data import EpisodeConfig, EpisodeSampler, glyphs
    from tfmeta.data.disk import DiskImages
    from tfmeta.data.source import ImageSource

    in_memory = glyphs()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "glyphs.npy")
        np.save(path, in_memory.images)
        on_disk = ImageSource(DiskImages(path), in_memory.class_names, in_memory.offsets)
        np.asarray(on_disk.images)  # into the page cache
        streams = {}
        for name, source in (("memory", in_memory), ("disk", on_disk)):
            sampler = EpisodeSampler(source, EpisodeConfig(5, 1, 15), args.meta_batch, seed=0)
            streams[name] = iter(sampler.dataset())
            for _ in range(3):  # warm-up
                next(streams[name])
        rates = {name: [] for name in streams}
        for _ in range(args.windows):
            for name, stream in streams.items():
                began = time.perf_counter()
                for _ in range(args.batches):
                    next(stream)
                rates[name].append(args.batches * args.meta_batch / (time.perf_counter() - began))
    print(json.dumps({name: {"tasks_per_s_median": round(float(np.median(r))),
                             "min": round(min(r)), "max": round(max(r))}
                      for name, r in rates.items()}))


if __name__ == "__main__":
    main()
