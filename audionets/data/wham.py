"""WHAM!: WSJ0-2mix with real ambient noise (Wichern et al. 2019).

Layout written by the WHAM! scripts (``create_wham_from_scratch.py``)::

    {root}/wav8k/min/tr/mix_clean/<name>.wav     also wav16k/, max/; cv/, tt/
    {root}/wav8k/min/tr/mix_both/<name>.wav      two speakers + noise
    {root}/wav8k/min/tr/mix_single/<name>.wav    speaker 1 + noise
    {root}/wav8k/min/tr/s1/  s2/  noise/

``mixture`` picks the input: ``clean`` (-> sources s1, s2), ``both`` (noisy input, the targets
are the clean sources s1, s2: joint separation and denoising), ``single`` (noisy speaker 1,
target s1: speech enhancement, one source). Splits: train = ``tr``, valid = ``cv``,
test = ``tt``.
"""

from __future__ import annotations


from audionets.data.layouts import FileMixtureDataset, root_dir
from audionets.data.wsj0mix import folder_examples, layout_dir
from audionets.errors import check_choice
from audionets.registry import DATASETS

GET = ("create WHAM! with the scripts and wham_noise.zip of http://wham.whisper.ai/ "
       "(they need WSJ0 from the LDC)")
MIXTURES = {"clean": ("mix_clean", ("s1", "s2")), "both": ("mix_both", ("s1", "s2")),
            "single": ("mix_single", ("s1",))}


@DATASETS.register("wham")
class WHAM(FileMixtureDataset):
    """WHAM! items ``{"mix": [T], "sources": [S, T], "id": str}`` (S = 2, or 1 for ``single``).

    Args:
        root: the folder holding ``wav8k``/``wav16k``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: 8000 or 16000; picks ``wav8k`` or ``wav16k``.
        segment_seconds: crop/pad length; None keeps full mixtures.
        mixture: ``"clean"``, ``"both"`` or ``"single"``.
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        sample_rate: int = 8000,
        segment_seconds: float | None = 4.0,
        mixture: str = "both",
        mode: str = "min",
    ) -> None:
        check_choice("data.mixture", mixture, tuple(MIXTURES))
        root_path = root_dir(root, GET)
        split_dir = layout_dir(root_path, sample_rate, mode, split, "WHAM!", GET)
        mix_dir, sources = MIXTURES[mixture]
        examples = folder_examples(split_dir, root_path, mix_dir, sources, GET)
        super().__init__(examples, split, sample_rate, segment_seconds)
        self.mixture = mixture
