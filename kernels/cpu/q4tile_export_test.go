package cpu

// SetQ4Tile lets MatMul compute groups of eight Q4_0 inputs in tiles
// (q4tile.go; on = true, the default) or row by row with the multi-input
// kernel, and returns a function that undoes the change.
var SetQ4Tile = setQ4Tile
