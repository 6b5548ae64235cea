"""A tiny RTSP server for the stream tests (GStreamer's gst-rtsp-server through python3-gi).

Run by the system Python, which has the ``gi`` bindings (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base and -good):

    python3 tests/rtsp_server.py PORT [FPS]

serves a live test pattern as MJPEG over RTP at rtsp://127.0.0.1:PORT/test until killed.
Prints "ready" once listening. The tests stop it (SIGKILL), stall it (SIGSTOP/SIGCONT)
and start it again on the same port.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    port = int(sys.argv[1])
    fps = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=160,height=120,"
        "framerate={}/1 ! jpegenc quality=60 ! rtpjpegpay name=pay0 pt=26 )".format(fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        sys.stderr.write("cannot listen on 127.0.0.1:{}\n".format(port))
        return 1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
