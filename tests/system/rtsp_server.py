"""A GStreamer RTSP server on 127.0.0.1 serving an H.264 test pattern, for tests and benchmarks.

Run by the system's Python (``/usr/bin/python3``: python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-ugly for x264enc).  Prints ``ready rtsp://127.0.0.1:PORT/test`` once it
listens; SIGTERM/SIGINT stop it.

``--stamp`` serves frames that carry their own send time: the top rows hold the wall clock
(microseconds, 56 bits) as black/white 16x16 blocks, which survive H.264 at the bitrate used
here, so a reader on the same machine measures glass-to-glass latency as receive time minus
the decoded stamp (see :func:`decode_stamp`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

BITS = 56  # microseconds since 1970 need 51 bits
BLOCK = 16


def stamp_image(width: int, height: int, micros: int, shade: int):
    """A grey frame whose first block row encodes ``micros`` (most significant bit first)."""
    import numpy as np

    image = np.full((height, width, 3), shade, np.uint8)
    per_row = width // BLOCK
    for bit in range(BITS):
        row, col = divmod(bit, per_row)
        value = 255 if (micros >> (BITS - 1 - bit)) & 1 else 0
        image[row * BLOCK:(row + 1) * BLOCK, col * BLOCK:(col + 1) * BLOCK] = value
    return image


def decode_stamp(image) -> int:
    """The microsecond stamp of a received BGR frame (block centres thresholded at mid-grey)."""
    per_row = image.shape[1] // BLOCK
    micros = 0
    for bit in range(BITS):
        row, col = divmod(bit, per_row)
        centre = image[row * BLOCK + BLOCK // 2, col * BLOCK + BLOCK // 2]
        micros = (micros << 1) | int(int(centre.mean()) > 127)
    return micros


def _launch(width: int, height: int, fps: int, stamp: bool) -> str:
    caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={fps}/1"
    source = (f"appsrc name=stamps is-live=true do-timestamp=true format=time caps={caps} ! videoconvert"
              if stamp else f"videotestsrc is-live=true pattern=ball ! {caps} ! videoconvert")
    return (f"( {source} ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast "
            f"key-int-max={fps} bitrate=4000 ! rtph264pay name=pay0 pt=96 config-interval=1 )")


def _feed_stamps(appsrc, width: int, height: int, fps: int, stop: threading.Event) -> None:
    """Push one stamped frame per 1/fps seconds into the media's appsrc until the media goes away."""
    from gi.repository import Gst

    period = 1.0 / fps
    due = time.monotonic()
    count = 0
    while not stop.is_set():
        image = stamp_image(width, height, int(time.time() * 1e6), 64 + (count * 4) % 128)
        if appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(image.tobytes())) != Gst.FlowReturn.OK:
            return
        count += 1
        due += period
        time.sleep(max(0.0, due - time.monotonic()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--stamp", action="store_true", help="frames carry their send time (for latency)")
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch(args.width, args.height, args.fps, args.stamp))
    factory.set_shared(True)
    stop = threading.Event()
    if args.stamp:
        def configure(_factory, media):
            appsrc = media.get_element().get_by_name("stamps")
            threading.Thread(target=_feed_stamps, args=(appsrc, args.width, args.height, args.fps, stop),
                             daemon=True).start()

        factory.connect("media-configure", configure)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://127.0.0.1:{args.port}/test", flush=True)
    loop.run()
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
