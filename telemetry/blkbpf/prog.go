package blkbpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Map and program names; the asm references maps by these names and
// cilium/ebpf fills in the file descriptors when the collection loads.
const (
	startMap = "blk_start"
	histMap  = "blk_hist"

	// maxInFlight bounds blk_start; beyond it the oldest entries go.
	maxInFlight = 16384
	// maxHistKeys bounds blk_hist: 64 devices x 5 ops x 65 slots fit.
	maxHistKeys = 64 * int(numOps) * (NumSlots + 1)
)

// Stack frame of both programs, offsets from the frame pointer R10. The
// start value and the histogram key are built here before map calls.
const (
	fpKey    = -8  // u64 request pointer (blk_start key)
	fpVal    = -24 // blk_start value: ts u64 @-24, dev u32 @-16, op u32 @-12
	fpValDev = -16
	fpValOp  = -12
	fpTmp    = -32 // 8 bytes of scratch for probe reads
	fpTmpHi  = -28

	fpHKey     = -16 // blk_hist key: dev u32 @-16, op u16 @-12, slot u16 @-10
	fpHKeyOp   = -12
	fpHKeySlot = -10
	fpZero     = -24 // u64 zero used to create a histogram entry
)

// collectionSpec builds the maps and the two programs for the offsets in l.
func collectionSpec(l layout) *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			startMap: {Name: startMap, Type: ebpf.LRUHash, KeySize: 8, ValueSize: 16, MaxEntries: maxInFlight},
			histMap:  {Name: histMap, Type: ebpf.PerCPUHash, KeySize: 8, ValueSize: 8, MaxEntries: uint32(maxHistKeys)},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"blk_issue":    {Name: "blk_issue", Type: ebpf.RawTracepoint, License: "GPL", Instructions: issueProg(l)},
			"blk_complete": {Name: "blk_complete", Type: ebpf.RawTracepoint, License: "GPL", Instructions: completeProg(l)},
		},
	}
}

// zero8 stores a u64 zero at fp+off. cilium/ebpf's asm has no 64-bit
// store of an immediate, so it is two 32-bit stores.
func zero8(off int16) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, off, 0, asm.Word),
		asm.StoreImm(asm.RFP, off+4, 0, asm.Word),
	}
}

// probeRead emits bpf_probe_read_kernel(fp+dst, size, base+off).
// bpf_probe_read_kernel is GPL-only, hence the programs' license.
func probeRead(dst int32, size int32, base asm.Register, off int32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, dst),
		asm.Mov.Imm(asm.R2, size),
		asm.Mov.Reg(asm.R3, base),
		asm.Add.Imm(asm.R3, off),
		asm.FnProbeReadKernel.Call(),
	}
}

// issueProg records the issue time, device and operation of a request:
//
//	blk_start[rq] = {ktime_get_ns(), dev(rq->q->disk), opclass(rq->cmd_flags)}
func issueProg(l layout) asm.Instructions {
	ins := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord), // R6 = args[0], struct request *
		asm.StoreMem(asm.RFP, fpKey, asm.R6, asm.DWord),
	}
	ins = append(ins, zero8(fpVal)...)
	ins = append(ins, zero8(fpValDev)...) // dev and op
	ins = append(ins, zero8(fpTmp)...)
	// Operation class: cmd_flags & REQ_OP_MASK, folded to 0..4.
	ins = append(ins, probeRead(fpValOp, 4, asm.R6, l.rqCmdFlags)...)
	ins = append(ins,
		asm.LoadMem(asm.R1, asm.RFP, fpValOp, asm.Word),
		asm.And.Imm(asm.R1, 0xff),
		asm.JLE.Imm(asm.R1, int32(OpOther)-1, "op_ok"),
		asm.Mov.Imm(asm.R1, int32(OpOther)),
		asm.StoreMem(asm.RFP, fpValOp, asm.R1, asm.Word).WithSymbol("op_ok"),
	)
	// Device: rq->q->disk->{major, first_minor}; a NULL on the way leaves 0.
	ins = append(ins, probeRead(fpTmp, 8, asm.R6, l.rqQueue)...)
	ins = append(ins,
		asm.LoadMem(asm.R7, asm.RFP, fpTmp, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "stamp"),
	)
	ins = append(ins, zero8(fpTmp)...)
	ins = append(ins, probeRead(fpTmp, 8, asm.R7, l.queueDisk)...)
	ins = append(ins,
		asm.LoadMem(asm.R7, asm.RFP, fpTmp, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "stamp"),
	)
	ins = append(ins, zero8(fpTmp)...)
	ins = append(ins, probeRead(fpTmp, 4, asm.R7, l.diskMajor)...)
	ins = append(ins, probeRead(fpTmpHi, 4, asm.R7, l.diskMinorBeg)...)
	ins = append(ins,
		asm.LoadMem(asm.R1, asm.RFP, fpTmp, asm.Word),
		asm.LSh.Imm(asm.R1, minorBits),
		asm.LoadMem(asm.R2, asm.RFP, fpTmpHi, asm.Word),
		asm.And.Imm(asm.R2, minorMask),
		asm.Or.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.RFP, fpValDev, asm.R1, asm.Word),
		// Stamp and store.
		asm.FnKtimeGetNs.Call().WithSymbol("stamp"),
		asm.StoreMem(asm.RFP, fpVal, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(startMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpKey),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, fpVal),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	return ins
}

// completeProg turns a completion into a histogram count:
//
//	s = blk_start[rq]; delete blk_start[rq]
//	d = ktime_get_ns() - s.ts
//	blk_hist[{s.dev, s.op, log2(d)}] += 1
//	blk_hist[{s.dev, s.op, SumSlot}] += d
func completeProg(l layout) asm.Instructions {
	_ = l // the completion reads nothing from the request but its address
	ins := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord),
		asm.StoreMem(asm.RFP, fpKey, asm.R6, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(startMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R7, asm.R0, 0, asm.DWord), // R7 = issue time
		asm.LoadMem(asm.R1, asm.R0, 8, asm.Word),
		asm.StoreMem(asm.RFP, fpHKey, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 12, asm.Word),
		asm.StoreMem(asm.RFP, fpHKeyOp, asm.R1, asm.Half),
		asm.StoreImm(asm.RFP, fpHKeySlot, 0, asm.Half),
		asm.FnKtimeGetNs.Call(),
		asm.Sub.Reg(asm.R0, asm.R7),
		asm.Mov.Reg(asm.R7, asm.R0), // R7 = latency ns
		asm.LoadMapPtr(asm.R1, 0).WithReference(startMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpKey),
		asm.FnMapDeleteElem.Call(),
	}
	ins = append(ins, log2Insns(asm.R8, asm.R7, asm.R1, asm.R9)...)
	ins = append(ins,
		asm.StoreMem(asm.RFP, fpHKeySlot, asm.R8, asm.Half),
		asm.Mov.Imm(asm.R9, 1),
	)
	ins = append(ins, histAdd(asm.R9, "cnt")...)
	ins = append(ins, asm.StoreImm(asm.RFP, fpHKeySlot, SumSlot, asm.Half))
	ins = append(ins, histAdd(asm.R7, "sum")...)
	ins = append(ins,
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
	return ins
}

// log2Insns sets dst = floor(log2(src)) (0 for src 0 or 1) by a branchy
// binary search over 32, 16, 8, 4, 2, 1 bit shifts: no loop for the
// verifier to bound. v and t are clobbered scratch registers.
func log2Insns(dst, src, v, t asm.Register) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(v, src),
		asm.Mov.Imm(dst, 0),
	}
	shifts := []int32{32, 16, 8, 4, 2, 1}
	for i, s := range shifts {
		next := fmt.Sprintf("log2_%d", i+1)
		first := asm.Mov.Reg(t, v)
		if i > 0 {
			first = first.WithSymbol(fmt.Sprintf("log2_%d", i))
		}
		ins = append(ins,
			first,
			asm.RSh.Imm(t, s),
			asm.JEq.Imm(t, 0, next),
			asm.Mov.Reg(v, t),
			asm.Add.Imm(dst, s),
		)
	}
	// The last jump target: a harmless move labelled log2_6.
	ins = append(ins, asm.Mov.Reg(t, v).WithSymbol(fmt.Sprintf("log2_%d", len(shifts))))
	return ins
}

// histAdd emits blk_hist[key at fpHKey] += val, creating the entry at zero
// first if it is missing. tag keeps the labels of several uses apart.
func histAdd(val asm.Register, tag string) asm.Instructions {
	lookup := func() asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(asm.R1, 0).WithReference(histMap),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, fpHKey),
			asm.FnMapLookupElem.Call(),
		}
	}
	ins := lookup()
	ins = append(ins,
		asm.JNE.Imm(asm.R0, 0, tag+"_add"),
	)
	ins = append(ins, zero8(fpZero)...)
	ins = append(ins,
		asm.LoadMapPtr(asm.R1, 0).WithReference(histMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpHKey),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, fpZero),
		asm.Mov.Imm(asm.R4, 1), // BPF_NOEXIST: another CPU may have made it
		asm.FnMapUpdateElem.Call(),
	)
	ins = append(ins, lookup()...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, tag+"_done"),
		// Per-CPU value, but nested programs on one CPU could still race.
		asm.AddAtomic.Mem(asm.R0, val, asm.DWord, 0).WithSymbol(tag+"_add"),
		asm.Mov.Imm(asm.R1, 0).WithSymbol(tag+"_done"),
	)
	return ins
}
