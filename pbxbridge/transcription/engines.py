"""Speech-to-text engines behind one interface: faster-whisper (default) and openai-whisper."""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pbxbridge.recordings.audio import read_info
from pbxbridge.transcription.model_files import model_dir
from pbxbridge.transcription.transcript import Segment, Transcript, Word, merge_by_time
from pbxbridge.transcription.vocabulary import respell

SAMPLE_RATE = 16_000
# Two-channel MixMonitor recordings (option D, or sox-joined r/t legs): the
# caller on the left, the manager on the right.
DEFAULT_CHANNEL_SPEAKERS = ("client", "manager")


class EngineUnavailable(RuntimeError):
    """The configured engine cannot be loaded (not installed, bad model path)."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How to run speech recognition; mirrors the [transcription] config section."""

    engine: str = "faster-whisper"
    model: str = ""
    device: str = "cpu"
    compute_type: str = "int8"
    language: str = "ru"
    beam_size: int = 5
    threads: int = 2
    # Silero VAD in front of Whisper: without it Whisper fills a call's
    # trailing silence with invented text (subtitle credits), which would then
    # turn up in search; it also puts the first word's timestamp closer.
    vad: bool = True
    # Re-decode a segment at rising temperatures when greedy/beam output looks
    # wrong (Whisper's fallback).  On these calls it re-decoded without
    # changing a word while costing a third of the time, so it is off unless
    # asked for.
    temperature_fallback: bool = False
    # The company's own words (product, company and street names) Whisper
    # would otherwise spell as it hears them; given to every 30-second window
    # as hotwords, which unlike an initial prompt is not dropped after the first.
    vocabulary: tuple[str, ...] = ()
    # faster-whisper's batched pipeline (with vad only): the VAD's speech
    # chunks (up to 30 s) decoded side by side, each in one pass.  Off: on the
    # shared calls it saved 0-15% CPU but, decoding a chunk once, it stopped
    # early on 2 of 4 calls and lost their last sentence; the sequential
    # decoding carries on from where the model stopped.
    batched: bool = False
    batch_size: int = 8

    @classmethod
    def from_config(cls, section: Any) -> EngineSettings:
        """Build from a config's transcription section (any object with those attributes)."""
        defaults = cls()
        values = {
            name: getattr(section, name, getattr(defaults, name)) for name in cls.__dataclass_fields__
        }
        values["vocabulary"] = tuple(values["vocabulary"])
        return cls(**values)

    @property
    def hotwords(self) -> str | None:
        """The vocabulary as Whisper's hint text, or None without one."""
        words = [w.strip() for w in self.vocabulary if w.strip()]
        return ", ".join(words) if words else None


class Engine(Protocol):
    """Anything that turns a recording (or one channel of it) into a Transcript."""

    name: str

    def transcribe(self, path: str | Path, channel: int | None = None) -> Transcript:
        """Transcribe the whole file (channel None: all channels mixed) or one channel."""
        ...


def load_audio(path: str | Path, channel: int | None = None) -> np.ndarray:
    """Decode a recording to 16 kHz mono float32; channel picks one side of a stereo file."""
    from faster_whisper.audio import decode_audio

    if channel is None:
        return decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    if channel not in (0, 1):
        raise ValueError(f"channel must be 0 (left) or 1 (right), not {channel}")
    left, right = decode_audio(str(path), sampling_rate=SAMPLE_RATE, split_stereo=True)
    return left if channel == 0 else right


def resolve_device(device: str) -> str:
    """cpu or cuda: "auto" picks a GPU when CTranslate2 sees one."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """An explicit compute type as given; "auto" or empty: int8 on CPU, float16 on GPU."""
    if compute_type in ("", "auto"):
        return "int8" if device == "cpu" else "float16"
    return compute_type


# Where the batched pipeline's one segment per speech chunk (up to 30 s) is cut
# into phrases as the sequential decoding gives them: at a sentence's end, or
# where the speaker paused this long.
PHRASE_PAUSE_S = 0.8
SENTENCE_END = (".", "!", "?", "…")


def split_at_pauses(start: float, end: float, text: str, words: list[tuple[float, float, str]]) -> list[Segment]:
    """A long segment as phrases, by its words' times: turns in a two-sided call interleave as spoken.

    words are as the model writes them, each with its leading space where a new
    word begins ("www", ".asterisk"), so that a phrase's text reads as said.
    """
    if not words:
        return [Segment(start, end, text.strip())]
    phrases: list[list[tuple[float, float, str]]] = [[words[0]]]
    for word in words[1:]:
        last = phrases[-1][-1]
        if word[0] - last[1] >= PHRASE_PAUSE_S or last[2].rstrip().endswith(SENTENCE_END):
            phrases.append([word])
        else:
            phrases[-1].append(word)
    return [
        Segment(
            phrase[0][0],
            phrase[-1][1],
            "".join(w[2] for w in phrase).strip(),
            None,
            tuple(Word(w0, w1, raw.strip()) for w0, w1, raw in phrase),
        )
        for phrase in phrases
    ]


class FasterWhisperEngine:
    """CTranslate2 Whisper: int8 on CPU, float16 on GPU by default."""

    name = "faster-whisper"

    def __init__(self, settings: EngineSettings) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        self.model_path = model_dir(settings.model)
        self.device = resolve_device(settings.device)
        self.compute_type = resolve_compute_type(settings.compute_type, self.device)
        try:
            self._model = WhisperModel(
                str(self.model_path),
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=settings.threads,
                num_workers=1,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineUnavailable(
                f"faster-whisper cannot load the model at {self.model_path}: {exc}"
            ) from exc
        self._check_vocabulary()
        self._batched: Any = self._batched_pipeline() if settings.batched else None

    def with_settings(self, settings: EngineSettings) -> FasterWhisperEngine:
        """This loaded model decoding with other settings (beam, VAD, vocabulary, batching): no second load."""
        loaded = ("engine", "model", "device", "compute_type", "threads")
        changed = [name for name in loaded if getattr(settings, name) != getattr(self.settings, name)]
        if changed:
            raise ValueError(f"{', '.join(changed)} can only change with a new model load")
        other = copy.copy(self)
        other.settings = settings
        other._check_vocabulary()
        other._batched = self._batched_pipeline() if settings.batched else None
        return other

    def _batched_pipeline(self) -> Any:
        from faster_whisper import BatchedInferencePipeline

        return BatchedInferencePipeline(model=self._model)

    def _check_vocabulary(self) -> None:
        """Refuse a vocabulary longer than Whisper reads, rather than let it drop the last names."""
        hotwords = self.settings.hotwords
        if hotwords is None:
            return
        tokens = len(self._model.hf_tokenizer.encode(" " + hotwords, add_special_tokens=False).ids)
        limit = self._model.max_length // 2 - 1
        if tokens > limit:
            raise EngineUnavailable(
                f"transcription.vocabulary is {tokens} tokens long for the model, which reads at most {limit}: "
                "keep the names it gets wrong"
            )

    def _temperature(self) -> dict[str, float]:
        """One decoding pass at temperature 0 unless the fallback was asked for."""
        return {} if self.settings.temperature_fallback else {"temperature": 0.0}

    def transcribe(self, path: str | Path, channel: int | None = None) -> Transcript:
        """Transcribe with word timestamps."""
        audio = load_audio(path, channel)
        # The batches are the VAD's speech chunks: without VAD, one window after another.
        batched = self._batched is not None and self.settings.vad
        if batched:
            segments, info = self._batched.transcribe(
                audio,
                language=self.settings.language or None,
                beam_size=self.settings.beam_size,
                word_timestamps=True,
                vad_filter=self.settings.vad,
                batch_size=self.settings.batch_size,
                hotwords=self.settings.hotwords,
                **self._temperature(),
            )
        else:
            segments, info = self._model.transcribe(
                audio,
                language=self.settings.language or None,
                beam_size=self.settings.beam_size,
                word_timestamps=True,
                vad_filter=self.settings.vad,
                # Each call is short and self-contained; conditioning on earlier
                # text only spreads one misheard word into the next segment.
                condition_on_previous_text=False,
                hotwords=self.settings.hotwords,
                **self._temperature(),
            )
        out: list[Segment] = []
        for seg in segments:
            raw = [(float(w.start), float(w.end), w.word) for w in (seg.words or ())]
            if batched:
                out.extend(split_at_pauses(float(seg.start), float(seg.end), seg.text, raw))
                continue
            words = tuple(Word(start, end, word.strip()) for start, end, word in raw)
            out.append(Segment(float(seg.start), float(seg.end), seg.text.strip(), None, words))
        return respell(Transcript(tuple(out), info.language, float(info.duration)), self.settings.vocabulary)


class OpenAIWhisperEngine:
    """The reference PyTorch Whisper, from a local checkpoint (.pt) file."""

    name = "openai-whisper"

    def __init__(self, settings: EngineSettings) -> None:
        try:
            whisper = importlib.import_module("whisper")
        except ImportError as exc:
            raise EngineUnavailable(
                "transcription.engine = \"openai-whisper\" needs the openai-whisper package: "
                "pip install 'pbxbridge[openai-whisper]'"
            ) from exc
        if not settings.model:
            raise EngineUnavailable(
                "openai-whisper needs transcription.model set to a local checkpoint file (.pt); "
                "pbxbridge never downloads models"
            )
        checkpoint = Path(settings.model).expanduser()
        if not checkpoint.is_file():
            raise EngineUnavailable(f"openai-whisper checkpoint {checkpoint} does not exist")
        self.settings = settings
        self.model_path = checkpoint
        import torch  # openai-whisper depends on it

        torch.set_num_threads(settings.threads)
        self.device = settings.device
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.compute_type = "float16" if self.device != "cpu" else "float32"
        self._whisper = whisper
        self._model = whisper.load_model(str(checkpoint), device=self.device)

    def transcribe(self, path: str | Path, channel: int | None = None) -> Transcript:
        """Transcribe with word timestamps."""
        audio = load_audio(path, channel)
        result = self._whisper.transcribe(
            self._model,
            audio,
            language=self.settings.language or None,
            beam_size=self.settings.beam_size,
            word_timestamps=True,
            fp16=self.device != "cpu",
            condition_on_previous_text=False,
            initial_prompt=self.settings.hotwords,
            **({} if self.settings.temperature_fallback else {"temperature": 0.0}),
        )
        out = []
        for seg in result["segments"]:
            words = tuple(
                Word(float(w["start"]), float(w["end"]), str(w["word"]).strip())
                for w in seg.get("words", ())
            )
            out.append(Segment(float(seg["start"]), float(seg["end"]), seg["text"].strip(), None, words))
        transcript = Transcript(tuple(out), result.get("language", ""), len(audio) / SAMPLE_RATE)
        return respell(transcript, self.settings.vocabulary)


ENGINES: dict[str, type[FasterWhisperEngine] | type[OpenAIWhisperEngine]] = {
    FasterWhisperEngine.name: FasterWhisperEngine,
    OpenAIWhisperEngine.name: OpenAIWhisperEngine,
}


def make_engine(settings: EngineSettings) -> Engine:
    """Load the configured engine and its model (slow: do it once per process)."""
    try:
        cls = ENGINES[settings.engine]
    except KeyError:
        raise EngineUnavailable(
            f"unknown transcription.engine {settings.engine!r}; choose one of {sorted(ENGINES)}"
        ) from None
    return cls(settings)


def _labelled(transcript: Transcript, speaker: str | None) -> Transcript:
    segments = tuple(
        Segment(s.start, s.end, s.text, speaker, s.words) for s in transcript.segments
    )
    return Transcript(segments, transcript.language, transcript.duration_s)


def transcribe_recording(
    engine: Engine,
    path: str | Path,
    channel_speakers: tuple[str, str] = DEFAULT_CHANNEL_SPEAKERS,
) -> Transcript:
    """Transcribe a call recording; a two-channel file gives one speaker per channel."""
    info = read_info(path)
    if info.channels == 2:
        # Each side alone: overlapping speech would otherwise be lost, and the
        # channel says who spoke.
        parts = [
            _labelled(engine.transcribe(path, channel=index), speaker)
            for index, speaker in enumerate(channel_speakers)
        ]
        return merge_by_time(parts)
    return engine.transcribe(path)
