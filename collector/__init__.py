"""The collector process. Importing it first loads the compiled mapper when one matches the sources."""

from collector import native

native.activate()
