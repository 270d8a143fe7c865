"""Frame sources from one string each, with the conventions users already know.

==========================  ===============================================================
string                      source
==========================  ===============================================================
``0``, ``1``                webcam by index (OpenCV's default backend, V4L2 on Linux)
``/dev/video0``             a V4L2 device; also ``v4l2:///dev/video0``
``csi://0``                 Jetson CSI camera via GStreamer ``nvarguscamerasrc`` (sensor-id 0)
``rtsp://...``              RTSP stream: GStreamer (latency=0, newest frame only) where OpenCV has it, else FFmpeg
``http(s)://...``           MJPEG (multipart/x-mixed-replace) read directly; other streams via FFmpeg
``gst:PIPELINE``            a raw GStreamer pipeline (``! appsink`` added if missing); live if it has a
                            camera/network source or ``is-live=true``, else it ends like a file
``video.mp4``               a video file (anything OpenCV/FFmpeg decodes)
``image.png``               one image
``folder/``                 every image in a folder, in name order
``"frames/*.jpg"``          a glob of images, in name order
``bag:PATH``, ``x.mcap``    a rosbag2 folder (MCAP or sqlite3) or a .mcap/.db3 file (:mod:`fcn_edge.stream.bag`)
==========================  ===============================================================

Malformed strings and missing devices raise :class:`~fcn_edge.errors.SourceError`
with one sentence.  Sources deliver BGR uint8 frames, apply the flip/rotate options,
and report when each frame arrived; reconnecting, stall detection and threading are
the feed's job (:mod:`fcn_edge.stream.feed`).
"""

from __future__ import annotations

import abc
import glob as globlib
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fcn_edge.errors import SourceError
from fcn_edge.lazy import opencv as cv2_module  # the name used here and in mjpeg.py
from fcn_edge.lazy import opencv_log_level
from fcn_edge.stream.frames import Frame, now

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
LIVE_KINDS = ("webcam", "v4l2", "csi", "rtsp", "http", "gst")
FILE_KINDS = ("video", "image", "folder", "glob", "bag")
FLIPS = {"h": 1, "horizontal": 1, "v": 0, "vertical": 0, "both": -1, "hv": -1}
ROTATIONS = (0, 90, 180, 270)
RTSP_BACKENDS = ("auto", "gstreamer", "ffmpeg")
SOURCE_HELP = ("a camera index (0), /dev/videoN, v4l2:///dev/videoN, csi://N, rtsp://..., http(s)://..., "
               "gst:PIPELINE, a video or image file, a folder, a glob such as 'frames/*.png', or bag:PATH (rosbag2/MCAP)")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source string: ``kind`` (see LIVE_KINDS / FILE_KINDS) and its ``target``."""

    kind: str
    target: str
    text: str
    forced_live: bool = False  # the user's --live: reopen it when it ends, keep only the newest frame

    @property
    def live(self) -> bool:
        """Live sources are reopened when they end; others (files, finite pipelines) end the run."""
        if self.forced_live:
            return True
        if self.kind == "gst":
            return gst_pipeline_is_live(self.target)
        return self.kind in LIVE_KINDS

    @property
    def display_name(self) -> str:
        if self.kind == "http" or self.kind == "rtsp":
            return _redact_url(self.target)
        return self.text


@dataclass
class SourceOptions:
    """What to ask of a source.

    ``width``/``height``/``fps`` are requests to cameras (V4L2, CSI, GStreamer); other
    sources deliver frames at their own size unless ``resize`` is set, which makes every
    source deliver exactly ``width`` x ``height``.  ``flip`` is ``h``, ``v`` or ``both``;
    ``rotate`` is 0/90/180/270 degrees clockwise (applied after flip).  ``loop`` replays
    files and image sets forever.  ``topic`` is the image topic of a bag (None: its only
    one); ``realtime`` replays a bag at its recorded timing.  ``read_timeout`` (s) is how long a live source may
    go without a frame before it counts as stalled.
    """

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    flip: str | None = None
    rotate: int = 0
    loop: bool = False
    resize: bool = False
    read_timeout: float = 5.0
    open_timeout: float = 10.0
    rtsp_transport: str = "tcp"
    rtsp_backend: str = "auto"  # auto (GStreamer where OpenCV has it, else FFmpeg), gstreamer or ffmpeg
    csi_flip_method: int = 0
    topic: str | None = None
    realtime: bool = False

    def __post_init__(self) -> None:
        if self.flip is not None:
            key = str(self.flip).lower()
            if key in ("", "none", "no"):
                self.flip = None
            elif key not in FLIPS:
                raise SourceError(f"flip must be h, v or both, got {self.flip!r}")
            else:
                self.flip = key
        self.rotate = int(self.rotate or 0) % 360
        if self.rotate not in ROTATIONS:
            raise SourceError(f"rotate must be 0, 90, 180 or 270 degrees, got {self.rotate}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise SourceError(f"{name} must be a positive number of pixels, got {value}")
        if self.fps is not None and not self.fps > 0:
            raise SourceError(f"fps must be positive, got {self.fps}")
        if self.resize and not (self.width and self.height):
            raise SourceError("resize needs both width and height")
        if not self.read_timeout > 0:
            raise SourceError(f"read timeout must be positive, got {self.read_timeout}")
        if self.rtsp_backend not in RTSP_BACKENDS:
            raise SourceError(f"rtsp backend must be one of {', '.join(RTSP_BACKENDS)}, got {self.rtsp_backend!r}")


def parse_source(text: str | int) -> SourceSpec:
    """Parse a source string; raises :class:`SourceError` for malformed strings or missing files."""
    raw = str(text).strip()
    if not raw:
        raise SourceError(f"empty source: give {SOURCE_HELP}")
    if "\x00" in raw:
        # No path, device or URL can hold a NUL byte; the OS calls would raise ValueError deep inside.
        raise SourceError(f"source {raw!r} contains a NUL byte; give {SOURCE_HELP}")
    if re.fullmatch(r"\d+", raw):
        return SourceSpec("webcam", raw, raw)
    lower = raw.lower()
    if lower.startswith("bag:"):
        return _parse_bag(raw[4:].strip(), raw)
    if lower.startswith("gst:"):
        pipeline = raw[4:].strip()
        if pipeline.startswith("//"):
            pipeline = pipeline[2:].strip()
        if not pipeline:
            raise SourceError("gst: source has no pipeline; write e.g. 'gst:videotestsrc ! videoconvert ! appsink'")
        return SourceSpec("gst", pipeline, raw)
    if "://" in raw:
        scheme, rest = raw.split("://", 1)
        scheme = scheme.lower()
        if scheme == "v4l2":
            target = rest if rest.startswith("/") else rest
            if re.fullmatch(r"\d+", target):
                target = f"/dev/video{target}"
            if not re.fullmatch(r"/dev/video\d+", target) and not target.startswith("/dev/"):
                raise SourceError(f"{raw}: v4l2:// needs a device such as v4l2:///dev/video0")
            return SourceSpec("v4l2", target, raw)
        if scheme == "csi":
            if not re.fullmatch(r"\d+", rest.strip("/")):
                raise SourceError(f"{raw}: csi:// needs a sensor number, e.g. csi://0")
            return SourceSpec("csi", rest.strip("/"), raw)
        if scheme in ("rtsp", "rtsps", "rtmp", "srt", "udp", "rtp"):
            if not rest or rest.startswith("/"):
                raise SourceError(f"{raw}: the stream URL has no host")
            return SourceSpec("rtsp", raw, raw)
        if scheme in ("http", "https"):
            if not rest or rest.startswith("/"):
                raise SourceError(f"{raw}: the URL has no host")
            return SourceSpec("http", raw, raw)
        if scheme == "file":
            return _parse_path(rest if rest.startswith("/") else "/" + rest, raw)
        raise SourceError(f"unknown source scheme {scheme}:// in {raw!r}; expected {SOURCE_HELP}")
    if re.fullmatch(r"/dev/video\d+", raw):
        return SourceSpec("v4l2", raw, raw)
    return _parse_path(raw, raw)


def _parse_path(path_text: str, raw: str) -> SourceSpec:
    try:
        return _classify_path(path_text, raw)
    except OSError as exc:  # e.g. ENAMETOOLONG: pathlib's exists()/is_dir() only swallow "not found"
        shown = raw if len(raw) <= 80 else raw[:77] + "..."
        raise SourceError(f"source {shown!r} cannot be a path ({exc.strerror or exc}); "
                          f"expected {SOURCE_HELP}") from None


def _classify_path(path_text: str, raw: str) -> SourceSpec:
    expanded = os.path.expanduser(path_text)
    if any(ch in expanded for ch in "*?[") and not Path(expanded).exists():
        return SourceSpec("glob", expanded, raw)
    path = Path(expanded)
    if path.suffix.lower() in (".mcap", ".db3") or (path.is_dir() and (path / "metadata.yaml").is_file()):
        return _parse_bag(path_text, raw)
    if path.is_dir():
        return SourceSpec("folder", str(path), raw)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return SourceSpec("image", str(path), raw)
        return SourceSpec("video", str(path), raw)
    if path_text.startswith("/dev/"):
        raise SourceError(f"no device {path_text}: check the camera is connected (ls /dev/video*)")
    raise SourceError(f"source {raw!r} does not exist; expected {SOURCE_HELP}")


def _parse_bag(path_text: str, raw: str) -> SourceSpec:
    """``bag:PATH``: a rosbag2 folder or a .mcap/.db3 file that exists."""
    if path_text.startswith("//"):
        path_text = path_text[2:]
    if not path_text:
        raise SourceError("bag: source has no path; write e.g. bag:recording/ or bag:recording.mcap")
    path = Path(os.path.expanduser(path_text))
    if not path.exists():
        raise SourceError(f"bag {path_text} does not exist; give a rosbag2 folder, a .mcap or a .db3 file")
    return SourceSpec("bag", str(path), raw)


def _redact_url(url: str) -> str:
    """Hide credentials (rtsp://user:pass@host) in logs."""
    return re.sub(r"//[^/@]*@", "//***@", url)


class BadFrame(SourceError):
    """One frame a source delivered that cannot be used (None, empty, wrong shape or type).

    The source itself may still be fine: the feed skips such frames, and only after
    ``ReconnectPolicy.bad_frame_limit`` of them in a row treats the source as lost
    (see :mod:`fcn_edge.stream.feed`).
    """


def check_raw_image(image: Any) -> np.ndarray:
    """What a camera or decoder handed over, before colour normalisation; BadFrame if unusable.

    Accepted: uint8 or uint16, ``HxW``, ``HxWx1``, ``HxWx3`` (BGR) or ``HxWx4`` (BGRA), not empty.
    """
    if image is None:
        raise BadFrame("the source delivered no image (None)")
    if not isinstance(image, np.ndarray):
        raise BadFrame(f"the source delivered a {type(image).__name__}, not an image array")
    if image.ndim not in (2, 3) or image.size == 0 or min(image.shape[:2]) < 1:
        raise BadFrame(f"the source delivered an empty or malformed frame (shape {tuple(image.shape)})")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise BadFrame(f"the source delivered a frame with {image.shape[2]} channels (expected 1, 3 or 4)")
    if image.dtype not in (np.uint8, np.uint16):
        raise BadFrame(f"the source delivered a {image.dtype} frame (expected 8- or 16-bit pixels)")
    return image


def check_frame(frame: Any) -> None:
    """A frame as the runner takes it: a :class:`Frame` holding a non-empty uint8 ``HxWx3`` BGR image."""
    if not isinstance(frame, Frame):
        raise BadFrame(f"the source returned a {type(frame).__name__}, not a Frame")
    image = frame.image
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3
            or min(image.shape[:2]) < 1):
        shape = tuple(image.shape) if isinstance(image, np.ndarray) else type(image).__name__
        dtype = image.dtype if isinstance(image, np.ndarray) else "-"
        raise BadFrame(f"the source returned a frame of shape {shape} and type {dtype}; expected uint8 HxWx3 BGR")


def transform_frame(image: np.ndarray, options: SourceOptions) -> np.ndarray:
    """Colour-normalise to BGR uint8, then flip, rotate and (optionally) resize as asked.

    Raises :class:`BadFrame` for an image that cannot be normalised (see :func:`check_raw_image`).
    """
    cv2 = cv2_module()
    image = check_raw_image(image)
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if options.flip:
        image = cv2.flip(image, FLIPS[options.flip])
    if options.rotate:
        code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}[options.rotate]
        image = cv2.rotate(image, code)
    if options.resize and (image.shape[1], image.shape[0]) != (options.width, options.height):
        image = cv2.resize(image, (int(options.width), int(options.height)), interpolation=cv2.INTER_AREA)
    return image


def quiet_opencv():
    """OpenCV's log at errors only while a capture opens (it warns on stderr about every backend it tries)."""
    return opencv_log_level("LOG_LEVEL_ERROR")


def has_gstreamer() -> bool:
    cv2 = cv2_module()
    info = cv2.getBuildInformation()
    match = re.search(r"GStreamer:\s*(\S+)", info)
    return bool(match and match.group(1).upper() not in ("NO", "OFF"))


def csi_pipeline(sensor_id: int, width: int | None = None, height: int | None = None, fps: float | None = None,
                 flip_method: int = 0) -> str:
    """The nvarguscamerasrc pipeline for a Jetson CSI camera, ending in a BGR appsink that keeps only the newest buffer."""
    width = int(width or 1280)
    height = int(height or 720)
    rate = int(round(fps or 30))
    return (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
            f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, framerate=(fraction){rate}/1 ! "
            f"nvvidconv flip-method={int(flip_method)} ! video/x-raw, format=(string)BGRx ! "
            "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")


# Elements that deliver frames as they happen (cameras, screens, network receivers): a pipeline
# with one of them is live.  Anything else (filesrc, multifilesrc, videotestsrc, appsrc...) is
# finite: its end-of-stream ends the run, as a video file's end does.
LIVE_GST_ELEMENTS = ("nvarguscamerasrc", "nvv4l2camerasrc", "v4l2src", "libcamerasrc", "rtspsrc", "udpsrc",
                     "tcpclientsrc", "tcpserversrc", "souphttpsrc", "srtsrc", "srtclientsrc", "rtmpsrc", "rtmp2src",
                     "ximagesrc", "pipewiresrc", "aravissrc", "ksvideosrc", "avfvideosrc", "mfvideosrc", "dshowvideosrc")
_LIVE_GST = re.compile(r"(?<![\w-])(?:" + "|".join(LIVE_GST_ELEMENTS) + r")(?![\w-])"
                       r"|\bis-live\s*=\s*(?:true|1|yes)\b"
                       r"|\buri\s*=\s*[\"']?(?:rtsps?|rtmp|srt|udp|rtp|https?)://", re.IGNORECASE)


def gst_pipeline_is_live(pipeline: str) -> bool:
    """True when a GStreamer pipeline has a live element (a camera, a network source or ``is-live=true``).

    Live pipelines are reopened when they end (a camera hiccup, a dropped stream); finite ones
    (``videotestsrc num-buffers=N``, ``filesrc ! ... ! nvv4l2decoder``) reach end-of-stream once
    and end the run after every frame was processed.
    """
    return bool(_LIVE_GST.search(pipeline))


def appsink(live: bool) -> str:
    """A BGR appsink: live ones keep only the newest buffer (no lag); finite ones hold a few (every frame, back-pressure)."""
    if live:
        return "appsink drop=true max-buffers=1 sync=false"
    return "appsink drop=false max-buffers=4 sync=false"


def complete_gst_pipeline(pipeline: str, live: bool | None = None) -> str:
    """Append a BGR appsink to a user pipeline that does not end in one (dropping old buffers only when live)."""
    if "appsink" in pipeline:
        return pipeline
    live = gst_pipeline_is_live(pipeline) if live is None else live
    return f"{pipeline} ! videoconvert ! video/x-raw, format=(string)BGR ! {appsink(live)}"


def v4l2_pipeline(device: str, width: int | None = None, height: int | None = None, fps: float | None = None) -> str:
    """A GStreamer pipeline for a V4L2 camera (for ``gst:`` users and the rehearsal; ``v4l2://`` opens through OpenCV's V4L2).

    Caps are only stated when asked, so the camera's own format is negotiated otherwise.
    """
    caps = [f"width={int(width)}" if width else "", f"height={int(height)}" if height else "",
            f"framerate={int(round(fps))}/1" if fps else ""]
    caps_text = ",".join(c for c in caps if c)
    raw = f" ! video/x-raw,{caps_text}" if caps_text else ""
    return (f"v4l2src device={device} io-mode=2{raw} ! videoconvert ! video/x-raw, format=(string)BGR ! "
            f"{appsink(True)}")


def rtsp_pipeline(url: str, transport: str = "tcp", latency_ms: int = 0) -> str:
    """A low-latency RTSP pipeline: no jitter buffer delay, decodebin (nvv4l2decoder on a Jetson), newest frame only."""
    protocols = {"tcp": "tcp", "udp": "udp", "udp_multicast": "udp-mcast"}.get((transport or "tcp").lower(), "tcp")
    location = url.replace('"', "%22")
    return (f'rtspsrc location="{location}" latency={int(latency_ms)} protocols={protocols} drop-on-latency=true ! '
            f"decodebin ! videoconvert ! video/x-raw, format=(string)BGR ! {appsink(True)}")


def check_rtsp_server(url: str, timeout: float, name: str) -> None:
    """Raise :class:`SourceError` unless an RTSP server answers ``OPTIONS`` at ``url`` within ``timeout`` s.

    Cheap (one TCP round trip) and bounded, unlike the pipeline start it guards.  ``rtsps://``
    servers are only checked for an accepting TCP port (the answer would need TLS).
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    secure = parts.scheme.lower() == "rtsps"
    try:
        port = parts.port or (322 if secure else 554)
        host = parts.hostname
    except ValueError as exc:
        raise SourceError(f"{name}: not a valid RTSP URL ({exc})") from None
    if not host:
        raise SourceError(f"{name}: the stream URL has no host")
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            if secure:
                return
            connection.sendall(f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: fcn-edge\r\n\r\n".encode())
            answer = connection.recv(64)
    except OSError as exc:
        raise SourceError(f"cannot open {name} (the server at {host}:{port} does not answer: "
                          f"{exc.strerror or type(exc).__name__})") from None
    if not answer.startswith(b"RTSP/"):
        raise SourceError(f"cannot open {name} ({host}:{port} answered, but not as an RTSP server)")


def rtsp_uses_gstreamer(spec: SourceSpec, options: SourceOptions) -> bool:
    """Whether an ``rtsp://`` source opens through GStreamer (``rtsp_backend`` auto: when this OpenCV has it)."""
    if spec.kind != "rtsp" or not spec.target.lower().startswith(("rtsp://", "rtsps://")):
        return False
    if options.rtsp_backend == "ffmpeg":
        return False
    if options.rtsp_backend == "gstreamer":
        if not has_gstreamer():
            raise SourceError(f"{spec.display_name}: --rtsp-backend gstreamer needs OpenCV built with GStreamer; this "
                              "one has FFmpeg only (use the system OpenCV, or --rtsp-backend ffmpeg)")
        return True
    return has_gstreamer()


# ------------------------------------------------------------------- sources
class Source(abc.ABC):
    """One opened source.  ``read()`` returns the next :class:`Frame` or ``None`` at the end/on failure."""

    live: bool = False
    fps: float | None = None
    frame_count: int | None = None

    def __init__(self, spec: SourceSpec, options: SourceOptions, source_id: int = 0) -> None:
        self.spec = spec
        self.options = options
        self.source_id = source_id
        self.index = 0

    @property
    def name(self) -> str:
        return self.spec.display_name

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> Frame | None: ...

    def close(self) -> None:
        """Release the device/file/connection."""

    def interrupt(self) -> None:
        """Unblock a ``read()`` stuck in another thread, where the source can (the stall watchdog calls this)."""

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "kind": self.spec.kind, "live": self.live, "fps": self.fps,
                "frame_count": self.frame_count}

    def _frame(self, image: np.ndarray, timestamp: float, wall: float, capture_ms: float, name: str | None = None) -> Frame:
        start = now()
        image = transform_frame(image, self.options)
        frame = Frame(image=image, index=self.index, timestamp=timestamp, wall_time=wall, source_id=self.source_id,
                      name=name, timings={"capture": capture_ms + (now() - start) * 1000.0})
        self.index += 1
        return frame


class CaptureSource(Source):
    """Anything ``cv2.VideoCapture`` opens: webcams, V4L2, CSI/GStreamer, RTSP/HTTP through FFmpeg, video files."""

    def __init__(self, spec: SourceSpec, options: SourceOptions, source_id: int = 0) -> None:
        super().__init__(spec, options, source_id)
        self.live = spec.live
        self._capture = None
        self._read_since_open = 0
        self.backend: str | None = None  # the OpenCV backend that opened it, once open

    def _open_capture(self):
        cv2 = cv2_module()
        spec, opt = self.spec, self.options
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(opt.open_timeout * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(opt.read_timeout * 1000)]
        if spec.kind == "webcam":
            index = int(spec.target)
            if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
                raise SourceError(f"no camera {index}: /dev/video{index} does not exist (ls /dev/video*)")
            return cv2.VideoCapture(index, cv2.CAP_ANY)
        if spec.kind == "v4l2":
            if not Path(spec.target).exists():
                raise SourceError(f"no device {spec.target}: check the camera is connected (ls /dev/video*)")
            return cv2.VideoCapture(spec.target, cv2.CAP_V4L2)
        if spec.kind in ("csi", "gst"):
            if not has_gstreamer():
                raise SourceError(f"{spec.text}: this OpenCV ({cv2.__version__}) was built without GStreamer; use the "
                                  "system's OpenCV (JetPack's, or sudo apt install python3-opencv) in a venv made with "
                                  "--system-site-packages, not a pip wheel")
            return self._open_gstreamer(cv2, self.gst_pipeline())
        if rtsp_uses_gstreamer(spec, opt):
            # OpenCV waits without a limit for a GStreamer pipeline to start, and an rtspsrc that
            # meets a refused or silent server sometimes never finishes starting: ask the server first.
            check_rtsp_server(spec.target, min(opt.open_timeout, 5.0), spec.display_name)
            return self._open_gstreamer(cv2, rtsp_pipeline(spec.target, opt.rtsp_transport))
        if spec.kind in ("rtsp", "http"):
            if spec.kind == "rtsp" and spec.target.lower().startswith("rtsp") and opt.rtsp_transport:
                # FFmpeg reads its options from this variable when the capture opens
                os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{opt.rtsp_transport}")
            self.backend = "ffmpeg"
            return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, timeouts)
        return cv2.VideoCapture(spec.target, cv2.CAP_ANY)

    def gst_pipeline(self) -> str:
        """The GStreamer pipeline a ``csi://`` or ``gst:`` source opens."""
        spec, opt = self.spec, self.options
        if spec.kind == "csi":
            return csi_pipeline(int(spec.target), opt.width, opt.height, opt.fps, opt.csi_flip_method)
        return complete_gst_pipeline(spec.target, self.live)

    def _open_gstreamer(self, cv2: Any, pipeline: str) -> Any:
        log.debug("GStreamer pipeline: %s", _redact_url(pipeline))
        self.backend = "gstreamer"
        return cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": self.backend}

    def open(self) -> None:
        cv2 = cv2_module()
        with quiet_opencv():  # OpenCV's own "[ WARN ] can't open" lines: our SourceError says it better
            capture = self._open_capture()
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            what = {"video": "cannot decode the video", "webcam": "cannot open camera",
                    "v4l2": "cannot open the V4L2 device"}.get(self.spec.kind, "cannot open")
            hint = {"video": " (unsupported format or corrupt file)",
                    "webcam": " (busy in another program, or not a capture device?)",
                    "v4l2": " (busy in another program, or not a capture device?)",
                    "rtsp": " (unreachable, wrong path or credentials?)",
                    "http": " (unreachable or not a video stream?)"}.get(self.spec.kind, "")
            raise SourceError(f"{what} {self.name}{hint}")
        if self.spec.kind in ("webcam", "v4l2"):
            if self.options.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, int(self.options.width))
            if self.options.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, int(self.options.height))
            if self.options.fps:
                capture.set(cv2.CAP_PROP_FPS, float(self.options.fps))
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer frames queued in the driver = less latency
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else self.options.fps
        if self.spec.kind == "video":
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.frame_count = count if count > 0 else None
        self._capture = capture
        self._read_since_open = 0

    def read(self) -> Frame | None:
        if self._capture is None:
            return None
        # Live: grab() waits for the camera, so the frame "arrives" when it returns and only
        # retrieve() counts as capture work.  Files: grab() is demuxing + decoding, so it counts.
        started = now()
        ok = self._capture.grab()
        arrived, wall = now(), time.time()
        if not self.live:
            arrived = started
        image = None
        if ok:
            ok, image = self._capture.retrieve()
        if not ok or image is None:
            if self.spec.kind == "video" and self.options.loop and self._read_since_open > 0:
                self._capture.release()
                self.open()
                return self.read()
            return None
        self._read_since_open += 1
        return self._frame(image, arrived, wall, (now() - arrived) * 1000.0)

    def close(self) -> None:
        if self._capture is not None:
            capture, self._capture = self._capture, None
            capture.release()


class ImageSequenceSource(Source):
    """One image, a folder of images or a glob, in name order; unreadable files are skipped with a warning."""

    def __init__(self, spec: SourceSpec, options: SourceOptions, source_id: int = 0) -> None:
        super().__init__(spec, options, source_id)
        self.paths: list[Path] = []
        self._position = 0
        self.skipped: list[str] = []
        self._noted: set[str] = set()

    def open(self) -> None:
        spec = self.spec
        if spec.kind == "image":
            paths = [Path(spec.target)]
        elif spec.kind == "folder":
            paths = sorted(p for p in Path(spec.target).iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not paths:
                raise SourceError(f"folder {spec.target} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        else:
            paths = sorted(Path(p) for p in globlib.glob(spec.target, recursive=True)
                           if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_EXTENSIONS)
            if not paths:
                raise SourceError(f"the glob {spec.text!r} matches no image files")
        self.paths = paths
        self.frame_count = len(paths)
        self.fps = self.options.fps
        self._position = 0

    def read(self) -> Frame | None:
        # The robust image reader datasets use too: the same rules as train/eval/calibrate (grayscale,
        # 16-bit and alpha converted with a note; empty, corrupt and truncated files refused with the reason).
        from fcn_edge.imaging import load_image
        from fcn_edge.errors import DataError

        attempts = 0
        while True:
            if self._position >= len(self.paths):
                if len(self.skipped) >= len(self.paths) and self.index == 0:
                    raise SourceError(f"none of the {len(self.paths)} image(s) of {self.spec.display_name} could be "
                                      "read (see the warnings above)")
                if not self.options.loop or len(self.skipped) >= len(self.paths):
                    return None
                self._position = 0
            path = self.paths[self._position]
            self._position += 1
            arrived, wall = now(), time.time()
            try:
                loaded = load_image(path)
            except DataError as exc:
                if str(path) not in self.skipped:
                    self.skipped.append(str(path))
                    log.warning("%s: skipping %s: %s", self.spec.display_name, path.name, exc)
                attempts += 1
                if attempts > len(self.paths):
                    if self.index == 0:
                        raise SourceError(f"none of the {len(self.paths)} image(s) of {self.spec.display_name} could "
                                          "be read (see the warnings above)")
                    return None
                continue
            for note in loaded.notes:
                if note not in self._noted:
                    self._noted.add(note)
                    log.info("%s: %s (first: %s)", self.spec.display_name, note, path.name)
            return self._frame(loaded.pixels, arrived, wall, (now() - arrived) * 1000.0, name=path.stem)


def create_source(spec: SourceSpec | str, options: SourceOptions | None = None, source_id: int = 0) -> Source:
    """A (not yet opened) source for a spec; ``http(s)`` is probed at open time for MJPEG."""
    if not isinstance(spec, SourceSpec):
        spec = parse_source(spec)
    options = options or SourceOptions()
    if spec.kind in ("image", "folder", "glob"):
        return ImageSequenceSource(spec, options, source_id)
    if spec.kind == "bag":
        from fcn_edge.stream.bag import BagSource

        return BagSource(spec, options, source_id)
    if spec.kind == "http":
        from fcn_edge.stream.mjpeg import HttpSource

        return HttpSource(spec, options, source_id)
    return CaptureSource(spec, options, source_id)


def open_source(spec: SourceSpec | str, options: SourceOptions | None = None, source_id: int = 0) -> Source:
    """Create and open a source (raises :class:`SourceError` with one sentence)."""
    source = create_source(spec, options, source_id)
    source.open()
    return source
