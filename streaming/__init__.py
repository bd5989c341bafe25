"""Wire formats for streamed answers. Each encoder turns the same events into its own frames;
nothing else in the code base writes `data: ` itself."""

from .encoders import SimpleStream, StreamEncoder, TextStream, UIMessageStream, streaming_response

__all__ = ["SimpleStream", "StreamEncoder", "TextStream", "UIMessageStream", "streaming_response"]
