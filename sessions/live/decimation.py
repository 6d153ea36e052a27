"""Decimation of a live stream (`max_hz`): fewer readings per sensor for one client, no spike lost."""

import json
import math


class Decimator:
    """Thins each sensor to at most about `max_hz` readings a second, keeping every interval's
    lowest and highest value (a spike is never thinned away).

    An interval is sent once a later reading of its sensor shows it is over, so a decimated stream
    runs at most one interval behind.
    """

    def __init__(self, max_hz: float) -> None:
        # Two readings (the extremes) per interval: intervals twice as long keep the rate.
        self.width = 2.0 / max_hz
        # (session, sensor) -> [bucket, lowest (key, position, line), highest (key, position, line)]
        self.open: dict[tuple[int, str], list] = {}

    def thin(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        for line in lines:
            reading = json.loads(line)
            # Sensor names repeat across rigs; sequence positions across sessions.
            sensor = (reading["session_id"], reading["sensor"])
            position = (reading["session_id"], reading["seq"])
            bucket = math.floor(reading["timestamp"] / self.width)
            value = reading["value"]
            key = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            state = self.open.get(sensor)
            if state is not None and state[0] != bucket:
                out.extend(_extremes(state))
                state = None
            if state is None:
                self.open[sensor] = [bucket, (key, position, line), (key, position, line)]
                continue
            if key is not None:
                if state[1][0] is None or key < state[1][0]:
                    state[1] = (key, position, line)
                if state[2][0] is None or key > state[2][0]:
                    state[2] = (key, position, line)
        return out


def _extremes(state: list) -> list[str]:
    low, high = state[1], state[2]
    if low[1] == high[1]:
        return [low[2]]
    first, second = sorted((low, high), key=lambda item: item[1])
    return [first[2], second[2]]
