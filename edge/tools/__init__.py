"""Local servers for tests, benches and the demo: a GStreamer RTSP camera and an ONVIF SOAP responder."""
