package bench
import ("testing";"github.com/fhirlake/fhirlake/transform")
func BenchmarkZZObs(b *testing.B) {
	in := input(b, Observation, TargetBytes())
	e := builtinEngine(b, transform.Options{}, "observation")
	b.SetBytes(in.size); b.ResetTimer()
	for range b.N { transformFile(b, e, in.path) }
}
func BenchmarkZZEOB(b *testing.B) {
	in := input(b, EOB, TargetBytes())
	e := builtinEngine(b, transform.Options{}, "eob", "eob_item")
	b.SetBytes(in.size); b.ResetTimer()
	for range b.N { transformFile(b, e, in.path) }
}
