"""Where shipped models live, and which model and direction a registration uses.

The rules of :func:`select_model` (docs/registration.md shows them with examples):

* ``--model PATH`` (a checkpoint folder, or a training run folder: its latest checkpoint) is used
  as given; its direction is ``--direction`` or "ab", and modalities are checked only when the
  checkpoint folder holds a ``card.json``.
* ``--model NAME`` (a shipped model) reads its card: the moving and fixed modalities, when given,
  decide the direction (moving = A and fixed = B: "ab"; moving = B and fixed = A: "ba"); one given
  modality decides it alone; none: "ab" (the name reads moving-fixed). A pairing the model cannot
  register, a card for other dimensions than the images', or a ``--direction`` that contradicts
  the modalities is refused with one line naming the models that would fit.
* no ``--model``: the shipped model of the images' dimensionality for the modality pair (moving
  T1, fixed T2 when no modality is given), in either orientation.

Modalities compare case-insensitively and are reported as the cards spell them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firereg.pretrained.card import CARD_NAME, CardError, ModelCard

if TYPE_CHECKING:
    from firereg.model import FireModel

__all__ = ["ENV_VAR", "NO_MODELS", "ModelSelectionError", "Selection", "pretrained_root", "list_models",
           "get_card", "model_path", "load_pretrained", "select_model", "select_series_model"]

ENV_VAR = "FIREREG_PRETRAINED_DIR"
DIRECTIONS = ("ab", "ba")
DEFAULT_MOVING, DEFAULT_FIXED = "T1", "T2"
SERIES_MODALITY = "cine"
NO_MODELS = ("no --model given, and no models are shipped with this install; pass --model PATH (a "
             "checkpoint folder, or a training run folder)")


class ModelSelectionError(ValueError):
    """No model fits what was asked for; the message says why in one line."""


def pretrained_root() -> Path:
    """The folder of shipped models: ``$FIREREG_PRETRAINED_DIR`` when set, else this package's."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else Path(__file__).resolve().parent


def list_models() -> list[ModelCard]:
    """The cards of every shipped model, by name; folders without a ``card.json`` are ignored."""
    root = pretrained_root()
    if not root.is_dir():
        return []
    cards = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._"):
        card_path = folder / CARD_NAME
        if not card_path.is_file():
            continue
        card = ModelCard.load(card_path)
        if card.name != folder.name:
            raise CardError(f"{card_path}: names the model {card.name!r}, but its folder is "
                            f"{folder.name!r}")
        cards.append(card)
    return cards


def _shipped(cards: list[ModelCard]) -> str:
    if not cards:
        return f"no models are shipped with this install (none in {pretrained_root()})"
    return "shipped models: " + ", ".join(f"{c.name} ({c.modalities}, {c.ndim}D)" for c in cards)


def get_card(name: str) -> ModelCard:
    """The card of the shipped model ``name``; refuses an unknown name, listing the shipped ones."""
    cards = list_models()
    for card in cards:
        if card.name == name.casefold():
            return card
    raise ModelSelectionError(f"no shipped model is named {name!r}; {_shipped(cards)}")


def model_path(name: str) -> Path:
    """The checkpoint folder of the shipped model ``name``."""
    return pretrained_root() / get_card(name).name


def load_pretrained(name: str, *, device: str = "cpu") -> tuple[FireModel, ModelCard]:
    """Load the shipped model ``name`` and its card."""
    from firereg.training.checkpoint import load_model

    card = get_card(name)
    model = load_model(pretrained_root() / card.name, device=device)
    _check_card_fits(card, model, pretrained_root() / card.name)
    return model, card


def _check_card_fits(card: ModelCard, model: FireModel, path: Path) -> None:
    if model.config.ndim != card.ndim:
        raise CardError(f"{path}: its card says {card.ndim}D, its checkpoint holds a "
                        f"{model.config.ndim}D model")
    if model.config.diffeomorphic != card.diffeomorphic:
        raise CardError(f"{path}: its card says diffeomorphic {str(card.diffeomorphic).lower()}, its "
                        f"checkpoint's model.diffeomorphic is {str(model.config.diffeomorphic).lower()}")


@dataclass(frozen=True)
class Selection:
    """The model a registration uses, and how it was chosen.

    Attributes:
        checkpoint: the checkpoint folder to load.
        card: the model's card; None for a checkpoint without one (modalities unchecked).
        direction: "ab" (the moving image is the model's modality A) or "ba".
        how: a short human account of the choice, for the report.
        model: the shipped name, or the checkpoint folder of a ``--model`` path.
    """

    checkpoint: Path
    card: ModelCard | None
    direction: str
    how: str
    model: str

    def load(self, *, device: str = "cpu") -> FireModel:
        """Load the selected model (and check it against its card)."""
        from firereg.training.checkpoint import load_model

        model = load_model(self.checkpoint, device=device)
        if self.card is not None:
            _check_card_fits(self.card, model, self.checkpoint)
        return model


def _fold(text: str | None) -> str | None:
    return text.strip().casefold() if text is not None and text.strip() else None


def _directions(card: ModelCard, moving: str | None, fixed: str | None) -> list[str]:
    """The directions in which ``card``'s model takes a ``moving`` and a ``fixed`` image."""
    a, b = card.modality_a.casefold(), card.modality_b.casefold()
    m, f = _fold(moving), _fold(fixed)
    out = []
    if m in (None, a) and f in (None, b):
        out.append("ab")
    if m in (None, b) and f in (None, a):
        out.append("ba")
    return out


def _describe(moving: str | None, fixed: str | None) -> str:
    if moving and fixed:
        return f"{moving} -> {fixed}"
    if moving:
        return f"a {moving} moving image"
    return f"a {fixed} fixed image"


def _flags(moving: str | None, fixed: str | None) -> str:
    parts = ([f"--moving-modality {moving}"] if moving else []) + (
        [f"--fixed-modality {fixed}"] if fixed else [])
    return " ".join(parts)


def _fitting(cards: list[ModelCard], ndim: int | None, moving: str | None, fixed: str | None) -> list[str]:
    return [c.name for c in cards if (ndim is None or c.ndim == ndim) and _directions(c, moving, fixed)]


def _resolve(card: ModelCard, *, ndim: int | None, moving: str | None, fixed: str | None,
             direction: str | None, cards: list[ModelCard]) -> tuple[str, str]:
    """(direction, why) for ``card``, or a :class:`ModelSelectionError`."""
    if ndim is not None and card.ndim != ndim:
        same = {card.modality_a.casefold(), card.modality_b.casefold()}
        alternatives = [c.name for c in cards if c.ndim == ndim
                        and {c.modality_a.casefold(), c.modality_b.casefold()} == same]
        # "shipped": a --model folder may carry a card of the same name as a shipped model
        hint = (f" (shipped {ndim}D models for {card.modalities}: {', '.join(alternatives)})"
                if alternatives else "")
        raise ModelSelectionError(f"model {card.name} is {card.ndim}D; the input images are "
                                  f"{ndim}D{hint}")
    possible = _directions(card, moving, fixed)
    if not possible:
        others = _fitting(cards, ndim, moving, fixed)
        hint = (f"models for {_describe(moving, fixed)}: {', '.join(others)}" if others
                else f"no shipped {f'{ndim}D ' if ndim else ''}model takes {_describe(moving, fixed)}")
        what = (f"register {moving} -> {fixed}" if moving and fixed
                else f"take {_describe(moving, fixed)}")
        raise ModelSelectionError(f"model {card.name} registers {card.modalities}; it cannot {what} "
                                  f"({hint})")
    if direction is not None:
        if direction not in possible:
            raise ModelSelectionError(
                f"--direction {direction} contradicts {_flags(moving, fixed)}: model {card.name} "
                f"({card.modality_a} = A, {card.modality_b} = B) registers {_describe(moving, fixed)} "
                f"in direction {possible[0]}")
        return direction, f"--direction {direction}"
    chosen = possible[0]
    side = "A" if chosen == "ab" else "B"
    if len(possible) == 2 and (moving or fixed):
        why = f"moving and fixed are both {card.modality_a} (intra-modal), ab"
    elif moving:
        why = f"moving {moving} is its modality {side}"
    elif fixed:
        why = f"fixed {fixed} is its modality {'B' if chosen == 'ab' else 'A'}"
    else:
        why = f"default: the moving image is its modality A ({card.modality_a})"
    return chosen, why


def _checkpoint_folder(path: Path) -> Path | None:
    from firereg.training.checkpoint import LATEST, latest_checkpoint

    if (path / LATEST).is_file():
        return latest_checkpoint(path)
    if (path / "checkpoint.json").is_file():
        return path
    return None


def _checkpoint_ndim(folder: Path) -> int | None:
    """The model's ndim from ``checkpoint.json``, or None (load_model reports a bad file)."""
    try:
        ndim = json.loads((folder / "checkpoint.json").read_text())["model_config"].get("ndim", 2)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return ndim if ndim in (2, 3) else None


def _from_path(given: str, folder: Path, *, ndim: int | None, moving: str | None, fixed: str | None,
               direction: str | None, cards: list[ModelCard]) -> Selection:
    card_path = folder / CARD_NAME
    if card_path.is_file():
        card = ModelCard.load(card_path)
        chosen, why = _resolve(card, ndim=ndim, moving=moving, fixed=fixed, direction=direction,
                               cards=cards)
        return Selection(folder, card, chosen, f"--model {given} (with its card); {chosen}: {why}",
                         str(folder))
    found = _checkpoint_ndim(folder)
    if ndim is not None and found is not None and found != ndim:
        raise ModelSelectionError(f"model {given} is {found}D; the input images are {ndim}D")
    if direction is not None:
        why = f"--direction {direction}"
    else:
        why = "default: the moving image is the model's modality A"
    if moving or fixed:
        why += " (a checkpoint without a card: modalities not checked)"
    chosen = direction or "ab"
    return Selection(folder, None, chosen, f"--model {given}; {chosen}: {why}", str(folder))


def _automatic(*, ndim: int | None, moving: str | None, fixed: str | None, direction: str | None,
               cards: list[ModelCard], prefer_diffeomorphic: bool = False) -> Selection:
    if not cards:
        raise ModelSelectionError(NO_MODELS)
    dims = f"{ndim}D " if ndim else ""
    if moving is None and fixed is None:
        default = {DEFAULT_MOVING.casefold(), DEFAULT_FIXED.casefold()}
        pool = [c for c in cards if {c.modality_a.casefold(), c.modality_b.casefold()} == default]
        want_m, want_f = (DEFAULT_MOVING, DEFAULT_FIXED) if direction is None else (None, None)
        asked = f"{DEFAULT_MOVING} -> {DEFAULT_FIXED} (the default modalities)"
    else:
        pool, want_m, want_f = cards, moving, fixed
        asked = _describe(moving, fixed)
    fits = [(c, d) for c in pool if ndim is None or c.ndim == ndim
            for d in _directions(c, want_m, want_f)[:1]]
    if not fits:
        raise ModelSelectionError(f"no shipped {dims}model registers {asked}; {_shipped(cards)}; "
                                  "pass --model")
    if direction is not None:
        agreeing = [(c, d) for c, d in fits if direction in _directions(c, want_m, want_f)]
        if not agreeing:
            _resolve(fits[0][0], ndim=ndim, moving=want_m, fixed=want_f, direction=direction, cards=cards)
        fits = [(c, direction) for c, _ in agreeing]
    pairs = {frozenset((c.modality_a.casefold(), c.modality_b.casefold())) for c, _ in fits}
    if len(pairs) > 1:
        listed = ", ".join(f"{c.name} ({c.modalities})" for c, _ in fits)
        raise ModelSelectionError(f"several shipped {dims}models take {asked}: {listed}; give the other "
                                  "modality, or --model NAME")
    fits.sort(key=lambda cd: (cd[0].diffeomorphic != prefer_diffeomorphic, cd[1] != "ab", cd[0].name))
    card = fits[0][0]
    chosen, why = _resolve(card, ndim=ndim, moving=want_m, fixed=want_f, direction=direction, cards=cards)
    how = f"no --model: {card.name}, the shipped {dims}model for {asked}; {chosen}: {why}"
    if len(fits) > 1:
        how += f" (also fitting: {', '.join(c.name for c, _ in fits[1:])})"
    return Selection(pretrained_root() / card.name, card, chosen, how, card.name)


def select_model(model: str | None, *, ndim: int | None, moving_modality: str | None = None,
                 fixed_modality: str | None = None, direction: str | None = None,
                 intra_modal: bool = False, prefer_diffeomorphic: bool = False) -> Selection:
    """Which checkpoint registers images of ``ndim`` dimensions (None: any), and in which direction.

    ``model`` is a path (checkpoint or run folder), a shipped model's name, or None (choose by
    modality). Refuses with a one-line :class:`ModelSelectionError`.

    ``intra_modal=True`` (``register --refine``) accepts a pair of one modality (T1 -> T1) with a
    model that has that modality on one side and not the other: both images go through that side
    (docs/refinement.md). Without it such a pair is refused with a hint to add ``--refine``.

    Without ``model``, among the shipped models that fit, those trained with diffeomorphic fields
    come first when ``prefer_diffeomorphic`` (``register --diffeomorphic``), last otherwise.
    """
    m, f = _fold(moving_modality), _fold(fixed_modality)
    if m is not None and m == f:
        cards = list_models()
        own = [c for c in cards if c.modality_a.casefold() == m and c.modality_b.casefold() == m]
        named = {c.name: c for c in cards}.get(model.casefold()) if model else None
        one_side = any(m in (c.modality_a.casefold(), c.modality_b.casefold()) for c in cards)
        # a named model with two modalities takes the intra-modal path even when an intra-modal
        # model exists (it was asked for); without a name, an intra-modal model comes first
        named_two = named is not None and named.modality_a.casefold() != named.modality_b.casefold()
        if one_side and ((not own and named is None) or named_two):
            if not intra_modal:
                raise ModelSelectionError(
                    f"no shipped model registers {moving_modality} -> {fixed_modality} (intra-modal); "
                    f"add --refine to register it with a model that has {moving_modality} on one side "
                    "(docs/refinement.md)")
            if model is None:  # prefer the default pair's model, then by name
                default = {DEFAULT_MOVING.casefold(), DEFAULT_FIXED.casefold()}
                having = sorted((c for c in cards if (ndim is None or c.ndim == ndim)
                                 and m in (c.modality_a.casefold(), c.modality_b.casefold())),
                                key=lambda c: (c.diffeomorphic != prefer_diffeomorphic,
                                               {c.modality_a.casefold(), c.modality_b.casefold()} != default,
                                               c.name))
                if not having:
                    raise ModelSelectionError(f"no shipped {f'{ndim}D ' if ndim else ''}model has "
                                              f"{moving_modality} on either side; {_shipped(cards)}")
                model = having[0].name
            selection = select_model(model, ndim=ndim, moving_modality=moving_modality,
                                     fixed_modality=None, direction=direction)
            return Selection(selection.checkpoint, selection.card, selection.direction,
                             f"{selection.how}; intra-modal {moving_modality} -> {fixed_modality}: both "
                             f"images through side {selection.direction[0].upper()}, refined on the pair",
                             selection.model)
    if direction not in (None, *DIRECTIONS):
        raise ModelSelectionError(f"direction must be ab or ba, got {direction!r}")
    moving = moving_modality.strip() if moving_modality and moving_modality.strip() else None
    fixed = fixed_modality.strip() if fixed_modality and fixed_modality.strip() else None
    cards = list_models()
    if model is None:
        return _automatic(ndim=ndim, moving=moving, fixed=fixed, direction=direction, cards=cards,
                          prefer_diffeomorphic=prefer_diffeomorphic)
    path = Path(model)
    folder = _checkpoint_folder(path) if path.is_dir() else None
    if folder is not None:
        return _from_path(model, folder, ndim=ndim, moving=moving, fixed=fixed, direction=direction,
                          cards=cards)
    by_name = {c.name: c for c in cards}
    card = by_name.get(model.casefold())
    if card is not None:
        chosen, why = _resolve(card, ndim=ndim, moving=moving, fixed=fixed, direction=direction,
                               cards=cards)
        return Selection(pretrained_root() / card.name, card, chosen, f"--model {card.name}; {chosen}: {why}",
                         card.name)
    if path.exists():
        raise ModelSelectionError(f"--model {model}: not a checkpoint folder (no checkpoint.json) nor a "
                                  "training run folder (no latest)")
    raise ModelSelectionError(f"--model {model}: no such checkpoint or run folder, and not a shipped "
                              f"model; {_shipped(cards)}")


def select_series_model(model: str | None) -> Selection:
    """The model of ``firereg register-series``: ``model`` as given (any dimensionality, intra-modal
    when it has a card), or by default the shipped 2D cine model (its frames registered slice by
    slice)."""
    if model is None:
        return select_model(None, ndim=2, moving_modality=SERIES_MODALITY, fixed_modality=SERIES_MODALITY)
    selection = select_model(model, ndim=None)
    card = selection.card
    if card is not None and card.modality_a.casefold() != card.modality_b.casefold():
        raise ModelSelectionError(f"model {card.name} registers {card.modalities}; register-series needs "
                                  f"an intra-modal model (A = B, e.g. {SERIES_MODALITY} <-> "
                                  f"{SERIES_MODALITY})")
    return selection
