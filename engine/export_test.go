package engine

// SetPackAlways makes LoadOptions.PackQ4 pack on any CPU (on = true) and
// returns a function that undoes it.
func SetPackAlways(on bool) (restore func()) {
	old := packAlways
	packAlways = on
	return func() { packAlways = old }
}
