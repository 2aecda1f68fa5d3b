"""Every default of `ia-live` that more than one module needs, in one place.

The command line (`realtime.cli`), the option dataclasses (`realtime.settings`), the publisher and `ia-sub`
read them from here, so a default is changed once. Values only: importing this module costs nothing.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO_ROOT / "checkpoints" / "default.pt"

# outputs
ZMQ_ENDPOINT = "tcp://127.0.0.1:5556"     # loopback: a network bind must be asked for explicitly
TOPIC = "ia.actions"
HEARTBEAT_S = 2.0        # a heartbeat message after this many seconds without one (0: never)
WAIT_TIMEOUT_S = 30.0    # --wait-subscribers gives up after this long

# prediction
AVERAGE = 3              # windows averaged per prediction
TOPK = 5                 # labels per message
STRIDE = 1               # predict every N sampled RGB frames

# processes
ENGINE = "auto"
POSE_BACKEND = "movenet"
POSE_WORKERS = 1

# supervision (realtime.supervisor / realtime.stages)
POLL_S = 0.2             # children check `stop` and their parent this often while they wait
STOP_GRACE_S = 1.0       # after `stop`, children get this long before terminate()
#: shared memory for the annotated video's frames (--output): 256 frames of 340x256, 41 of 1080p
VIDEO_RING_BYTES = 256 * 1024 * 1024
WINDOW_SLOTS = 3         # assembled windows in flight: one being inferred, one ready, one being written

# live sources: a stream that jumps by more than this many sampled-frame intervals (and at least GAP_MIN_S
# seconds) between two frames the pipeline kept has a gap; no window spans one (realtime.flow)
GAP_TICKS = 4
# --reconnect: give up once a camera/stream has been unreachable this long, at start-up or later (0: never)
RECONNECT_TIMEOUT_S = 60.0
GAP_MIN_S = 1.0
