"""The synthetic multimodal world: items whose every attribute is visible, audible and written down.

    world.py     the attribute vocabulary and the held-out split of attribute combinations
    render.py    images and video frames of an item      sound.py   its sound
    captions.py  its captions and paraphrases            generate.py  the world on disk, read back
    cli.py       `omniembed synth`

It feeds the demo, the tests and the benchmarks; it is not the only data the engine learns from
(omniembed.data.manifest is the user-facing format).
"""

from omniembed.data.synth.generate import SynthConfig, SynthWorld, generate, load_world

__all__ = ["SynthConfig", "SynthWorld", "generate", "load_world"]
