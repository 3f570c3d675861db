"""Dataset construction (MIns+): corpus filters, rendering, sampling, materialize, stats.

Modules, in pipeline order: :mod:`.run` (reading a run directory), :mod:`.rouge` (exact,
fast ROUGE-L), :mod:`.filters` (per-task pools after dedup), :mod:`.records` (instance
records and task matching), :mod:`.eachfmt` and :mod:`.render` (safe template rendering),
:mod:`.sampling`, :mod:`.writers`, :mod:`.materialize`, :mod:`.stats` and :mod:`.report`.
Nothing is imported here so that ``import instraug_dsl.dataset.render`` stays cheap.
"""
