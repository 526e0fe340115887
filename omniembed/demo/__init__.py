"""The main job end to end on the embedded defaults: `omniembed demo` (omniembed.demo.cli) train -> export ->
serve -> index -> cross-modal queries over gRPC (omniembed.demo.queries)."""
