"""Fire-and-forget publishing of telemetry events from agent processes.

from producer import Publisher
pub = Publisher()                       # settings from the environment (REDIS_URL, ...)
with pub.session("gpt-4o") as s, s.round() as r:
    r.usage(1200, 300)
"""

from producer.lifecycle import ForwardScope, RoundScope, SessionScope, ToolScope
from producer.publisher import Publisher
from producer.settings import ProducerSettings

__all__ = ["ForwardScope", "ProducerSettings", "Publisher", "RoundScope", "SessionScope", "ToolScope"]
