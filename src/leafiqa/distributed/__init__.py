"""LEAF on a Ray cluster (``pip install 'leaf-iqa[ray]'``): teaching a pool of images with Ray
Data (``ray_teach``) and scoring a catalogue with an actor pool (``ray_score``). Nothing here is
imported on the default, single-machine path."""
