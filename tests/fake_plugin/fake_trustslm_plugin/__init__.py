"""A third-party trustslm plugin, as another package would ship one: a probe kind and a folder of
specs, registered through entry points (see the dist-info beside this package)."""

from pathlib import Path

from trustslm.models.base import GENERATE, GenerateRequest
from trustslm.probes.base import LoadedData, MetricDef, Probe, ProbeOptions, ProbeOutput

SPECS = Path(__file__).parent / "specs"


class ReplyLengthOptions(ProbeOptions):
    prompts: list[str] = ["Hello", "How are you?", "Tell me a story"]


class ReplyLengthProbe(Probe):
    kind = "reply_length"
    needs = frozenset({GENERATE})
    Options = ReplyLengthOptions
    metrics = (MetricDef(name="short_reply_rate", bounds=(0.0, 1.0), column="short", higher_is_better=True,
                         description="Share of replies of at most 5 words."),)

    def load(self, ctx):
        return LoadedData(items=[{"prompt": p} for p in self.options.prompts], datasets=[])

    def requests(self, data, ctx):
        return [GenerateRequest(prompt=i["prompt"], max_new_tokens=8) for i in data.items]

    def score(self, data, results, ctx):
        import pandas as pd

        rows = [{"short": float(len(results[r].text.split()) <= 5)} for r in self.requests(data, ctx)]
        return ProbeOutput(units=pd.DataFrame(rows))
