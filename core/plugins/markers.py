"""The pluggy markers. A leaf module: plugins import ``hookimpl`` from here and nothing else of the core's plugin machinery."""
import pluggy

PROJECT = "yiti"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
