"""WebSocket bytes as a client reads them: the frames' texts, parsed by the `websockets` library."""

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader


def websocket_texts(data: bytes) -> list[str]:
    """The texts of the server-to-client frames in `data`; fails on anything but whole, final text frames."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    texts = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        else:
            raise AssertionError("a truncated frame")
        assert frame.opcode is Opcode.TEXT and frame.fin, frame
        texts.append(frame.data.decode())
    return texts
