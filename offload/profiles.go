package offload

// GPU is a named device profile for the roofline: its memory read
// bandwidth (bytes/s, the published peak) and memory size.
type GPU struct {
	Name      string
	Bandwidth float64 // bytes/s
	Memory    int64   // bytes
}

// Published memory bandwidths and sizes (NVIDIA's specifications: bus
// width × data rate).
const (
	GTX1060Bandwidth   = 192e9  // GDDR5 8 Gb/s × 192 bit
	GTX1080Bandwidth   = 320e9  // GDDR5X 10 Gb/s × 256 bit
	RTX2080TiBandwidth = 616e9  // GDDR6 14 Gb/s × 352 bit
	RTX3060Bandwidth   = 360e9  // GDDR6 15 Gb/s × 192 bit
	RTX4090Bandwidth   = 1008e9 // GDDR6X 21 Gb/s × 384 bit
	H100SXMBandwidth   = 3.35e12
	GTX1060Memory      = 6 << 30
	GTX1080Memory      = 8 << 30
	RTX2080TiMemory    = 11 << 30
	RTX3060Memory      = 12 << 30
	RTX4090Memory      = 24 << 30
	H100SXMMemory      = 80 << 30
	DefaultGPUReserve  = 576 << 20 // CUDA context (527 MiB measured on an H100) and margin
)

// GPUProfiles returns the named profiles, smallest memory first.
func GPUProfiles() []GPU {
	return []GPU{
		{"GTX 1060 6GB", GTX1060Bandwidth, GTX1060Memory},
		{"GTX 1080", GTX1080Bandwidth, GTX1080Memory},
		{"RTX 2080 Ti", RTX2080TiBandwidth, RTX2080TiMemory},
		{"RTX 3060 12GB", RTX3060Bandwidth, RTX3060Memory},
		{"RTX 4090", RTX4090Bandwidth, RTX4090Memory},
		{"H100 SXM", H100SXMBandwidth, H100SXMMemory},
	}
}

// ProfileEstimate is the roofline of one GPU profile.
type ProfileEstimate struct {
	GPU GPU
	// This is the given plan on this GPU; nil when the plan and its
	// reserve need more memory than the card has.
	This *Estimate
	// Own is the plan Solve makes for the card's memory less
	// DefaultGPUReserve (same mode and options otherwise), and its
	// estimate; OwnErr says why there is none.
	OwnPlan *Plan
	Own     Estimate
	OwnErr  error
}

// EstimateProfiles evaluates plan p (made by Solve(d, o)) and each GPU
// profile's own plan at that GPU's bandwidth, with cpuBW bytes/s of DRAM
// bandwidth for the CPU half.
func EstimateProfiles(d *Desc, p *Plan, o Options, cpuBW float64) []ProfileEstimate {
	var out []ProfileEstimate
	for _, g := range GPUProfiles() {
		pe := ProfileEstimate{GPU: g}
		if p.TotalBytes+p.Reserve <= g.Memory {
			e := Roofline(d, p, cpuBW, g.Bandwidth)
			pe.This = &e
		}
		oo := o
		oo.Budget, oo.Reserve = g.Memory-DefaultGPUReserve, DefaultGPUReserve
		oo.CPUBandwidth, oo.DeviceBandwidth = cpuBW, g.Bandwidth
		if oo.Mode == ModeCPU {
			oo.Mode = ModeHybrid
		}
		if oo.Mode == ModeLayerSplit {
			oo.Layers = -1
		}
		pe.OwnPlan, pe.OwnErr = Solve(d, oo)
		if pe.OwnErr == nil {
			pe.Own = Roofline(d, pe.OwnPlan, cpuBW, g.Bandwidth)
		}
		out = append(out, pe)
	}
	return out
}
