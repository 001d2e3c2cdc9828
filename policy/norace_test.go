//go:build !race

package policy

// raceEnabled: wall-clock bounds are asserted only without the race
// detector, which makes everything about ten times slower.
const raceEnabled = false
