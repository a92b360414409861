"""The standard metric suite of spec §8 as ``metric`` components: fid, fvd, sync, identity, efid."""
