package check

func (c *checker) extraPhases() []struct {
	name string
	fn   func() error
} {
	return nil
}
