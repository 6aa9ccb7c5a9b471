"""Names every layer shares, and the wire messages: standard library only, no torch, no numpy.

msrg/ (the model), engines/, realtime/, ui/ and outside subscribers import from here; this
package imports nothing of the project's. `names` holds the modalities, the live feature layout,
the recurrent state's names and order, the intensity range and the label bands; `messages` the
message classes, their schema and their encoding.
"""
