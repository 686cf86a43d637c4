#!/usr/bin/env python3
"""callgrind_ab.py MANIFEST [TOP]: the report of perf/callgrind-ab.sh.

MANIFEST lines: run idx binary dumpS dumpL benchS.json benchL.json
Per run the window is L minus S (same fixed work, more GETs)."""
import sys, re, json, glob, collections

GET_FN = 'github.com/pocketstore/pocket/dataplane.(*Node).get'


MCALL = re.compile(r"runtime\.mcall('\d+)?$")
# callgrind names a function entered while already on its (shadow) call
# stack f'2, f'3...; for Go that is mostly an artifact of goroutine stack
# switches, so the split is arbitrary: merge them (self edges f->f are then
# left out of inclusive costs).
RECSUF = re.compile(r"'\d+$")
POCKET = 'github.com/pocketstore/pocket/'


def parse1(path):
    """Raw callgrind parse of one file (callgrind_annotate's exclusive view
    is wrong for Go binaries). Returns total, self, calls, inclusive.
    self and calls merge callgrind's recursion names f'2, f'3... into f.
    inclusive(f) = self(f) + cost of f's calls to other functions, computed
    on callgrind's own names (merging f'2 into f would count the nested f'2
    twice), leaving out calls into runtime.mcall (the goroutine resumed
    after a park shows as called by mcall)."""
    names = {}
    selfc = collections.Counter(); calls = collections.Counter()
    rself = collections.Counter(); callc = collections.Counter()
    cur = None; callee = None; pending = None; total = 0; summary = None

    def nm(s):
        m = re.match(r'\((\d+)\)(?: (.*))?', s)
        if not m:
            return s
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]
    with open(path) as f:
        for line in f:
            if line == '\n':
                continue
            c0 = line[0]
            if c0.isdigit() or c0 in '+-*':
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending:
                    ce, cnt = pending
                    calls[RECSUF.sub('', ce)] += cnt
                    if ce != cur and not MCALL.match(ce):
                        callc[cur] += cost
                    pending = None
                else:
                    rself[cur] += cost; total += cost
                continue
            if line.startswith('fn='):
                cur = nm(line[3:].rstrip('\n'))
            elif line.startswith('cfn='):
                callee = nm(line[4:].rstrip('\n'))
            elif line.startswith('calls='):
                pending = (callee, int(line[6:].split()[0]))
            elif line.startswith('summary:'):
                summary = int(line.split()[1])
    incl = collections.Counter()
    for k in set(rself) | set(callc):
        incl[k] = rself[k] + callc[k]
    for k, v in rself.items():
        selfc[RECSUF.sub('', k)] += v
    if summary is not None and abs(summary - total) > max(1000, 1e-4 * summary):
        print(f"warning: {path}: summary {summary} != parsed total {total}", file=sys.stderr)
    return total, selfc, calls, incl


def parse(base):
    """All thread files base-NN of one dump (--separate-threads=yes). The
    sysmon thread (the one running runtime.sysmon) is kept apart. Returns
    total of the other threads, sysmon total, self, calls, inclusive."""
    files = sorted(glob.glob(base + '-*'))
    if not files:
        sys.exit(f"no dump files {base}-*")
    tot = 0; sysmon = 0
    selfc = collections.Counter(); calls = collections.Counter(); incl = collections.Counter()
    for f in files:
        t, s, c, i = parse1(f)
        if s['runtime.sysmon'] > 0:
            sysmon += t
            continue
        tot += t; selfc.update(s); calls.update(c); incl.update(i)
    return tot, sysmon, selfc, calls, incl


def sub(a, b):
    out = collections.Counter()
    for k in set(a) | set(b):
        out[k] = a[k] - b[k]
    return out


def short(n):
    return n.replace('github.com/pocketstore/pocket/', '')


def main():
    man = sys.argv[1]; top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    runs = []
    for line in open(man):
        run, idx, binary, dS, dL, jS, jL = line.rstrip('\n').split('\t')
        bS, bL = json.load(open(jS)), json.load(open(jL))
        for b in (bS, bL):
            if b.get('errors', 0) or b.get('refused', 0):
                print(f"warning: run {run}: bench errors {b.get('errors')} refused {b.get('refused')}", file=sys.stderr)
        tS, ysS, sS, cS, iS = parse(dS)
        tL, ysL, sL, cL, iL = parse(dL)
        w = dict(run=int(run), idx=int(idx), bin=binary,
                 irS=tS, irL=tL, sysmon=ysL - ysS,
                 pocket=sum(v for k, v in sL.items() if k.startswith(POCKET)) - sum(v for k, v in sS.items() if k.startswith(POCKET)), opsS=bS['ops'], opsL=bL['ops'],
                 ir=tL - tS, gets=bL['ops'] - bS['ops'],
                 getcalls=cL[GET_FN] - cS[GET_FN], getcallsS=cS[GET_FN], getcallsL=cL[GET_FN],
                 self=sub(sL, sS), incl=sub(iL, iS), calls=sub(cL, cS))
        runs.append(w)

    nb = max(r['idx'] for r in runs) + 1
    bins = [next(r['bin'] for r in runs if r['idx'] == i) for i in range(nb)]
    lab = [chr(ord('A') + i) for i in range(nb)]

    print("== per run (window = long run L minus short run S on the same node; generator --warmup 0)")
    print("   Ir excludes the sysmon thread; 'all thr' includes it; 'pocket' = self Ir of pocket packages only;")
    print("   'L alone' = Ir_L/GETs_L without subtracting S (includes preload+cleanup of the keys)")
    print(f"{'run':>3} {'bin':<3} {'Ir S':>14} {'GETs S':>9} {'Ir L':>15} {'GETs L':>10} "
          f"{'window Ir':>15} {'win GETs':>10} {'Ir/GET':>8} {'all thr':>8} {'pocket':>7} {'L alone':>8}  node get() calls in window")
    for r in runs:
        chk = 'ok' if abs(r['getcalls'] - r['gets']) <= 1e-3 * r['gets'] else "MISMATCH"
        g = r['gets']
        print(f"{r['run']:>3} {lab[r['idx']]:<3} {r['irS']:>14,} {r['opsS']:>9,} {r['irL']:>15,} {r['opsL']:>10,} "
              f"{r['ir']:>15,} {g:>10,} {r['ir'] / g:>8.1f} {(r['ir'] + r['sysmon']) / g:>8.1f} {r['pocket'] / g:>7.1f} "
              f"{r['irL'] / r['opsL']:>8.1f}  {r['getcalls']:,} {chk}")

    agg = []
    print("\n== per binary (pooled over its runs)")
    for i in range(nb):
        rs = [r for r in runs if r['idx'] == i]
        ir = sum(r['ir'] for r in rs); g = sum(r['gets'] for r in rs)
        sm = sum(r['sysmon'] for r in rs); pk = sum(r['pocket'] for r in rs)
        per = [r['ir'] / r['gets'] for r in rs]
        sc = collections.Counter(); ic = collections.Counter(); cc = collections.Counter()
        for r in rs:
            sc.update(r['self']); ic.update(r['incl']); cc.update(r['calls'])
        agg.append(dict(ir=ir, g=g, sm=sm, pk=pk, self=sc, incl=ic, calls=cc))
        print(f"{lab[i]}: {bins[i]}")
        print(f"   window Ir {ir:,}  GETs {g:,}  Ir/GET {ir / g:.1f}   (runs: {', '.join(f'{p:.1f}' for p in per)}; "
              f"spread {max(per) - min(per):.1f})")
        print(f"   with sysmon thread {(ir + sm) / g:.1f} Ir/GET; pocket packages' self {pk / g:.1f} Ir/GET")
    base = agg[0]['ir'] / agg[0]['g']
    for i in range(1, nb):
        v = agg[i]['ir'] / agg[i]['g']
        print(f"ratio {lab[i]}/{lab[0]} Ir/GET: {v / base:.4f}  ({v - base:+.1f} Ir/GET)")
        va = (agg[i]['ir'] + agg[i]['sm']) / agg[i]['g']; ba = (agg[0]['ir'] + agg[0]['sm']) / agg[0]['g']
        vp = agg[i]['pk'] / agg[i]['g']; bp = agg[0]['pk'] / agg[0]['g']
        print(f"   with sysmon: {va / ba:.4f} ({va - ba:+.1f});  pocket self only: {vp / bp:.4f} ({vp - bp:+.1f})")

    def table(title, key, pick):
        print(f"\n== {title}")
        hdr = ''.join(f"{lab[i] + ' ' + key:>13}" for i in range(nb))
        hdr += ''.join(f"{lab[i] + ' calls':>9}" for i in range(nb))
        print(f"{hdr} {'delta':>8}  function (delta = {lab[nb - 1]} - {lab[0]}, per GET)")
        for fn in pick:
            vals = [agg[i][key][fn] / agg[i]['g'] for i in range(nb)]
            cl = [agg[i]['calls'][fn] / agg[i]['g'] for i in range(nb)]
            print(''.join(f"{v:>13.1f}" for v in vals) + ''.join(f"{c:>9.2f}" for c in cl)
                  + f" {vals[-1] - vals[0]:>+8.1f}  {short(fn)}")

    # inclusive: callgrind's call-edge costs are only trustworthy where no
    # goroutine switch happens inside the call (the request path: serve,
    # get, decode, ...). Around parking and syscalls (Loop.wait, pollWait,
    # flush, Syscall, morestack) a resumed goroutine's work lands in
    # whatever frames were left on callgrind's shadow stack, so those
    # inclusive figures jump from run to run (even negative). Rank only
    # functions whose inclusive Ir/GET is within [0, run total] in every run
    # and whose runs of one binary agree within INCL_TOL.
    INCL_TOL = 0.03
    tot_run = {r['run']: (r['ir'] + r['sysmon']) / r['gets'] for r in runs}
    def stable(fn):
        for i in range(nb):
            v = [r['incl'][fn] / r['gets'] for r in runs if r['idx'] == i]
            if any(x < -0.5 or x > tot_run[r['run']] + 0.5 for x, r in zip(v, [r for r in runs if r['idx'] == i])):
                return False
            m = sum(v) / len(v)
            if max(v) - min(v) > max(INCL_TOL * abs(m), 2.0):
                return False
        return True
    cand = []
    for i in range(nb):
        for fn, _ in agg[i]['incl'].most_common(top * 6):
            if fn not in cand:
                cand.append(fn)
    cand.sort(key=lambda f: -max(agg[i]['incl'][f] / agg[i]['g'] for i in range(nb)))
    pick = [f for f in cand if stable(f)][:top]
    lowest = min(max(agg[i]['incl'][f] / agg[i]['g'] for i in range(nb)) for f in pick) if pick else 0
    left = [f for f in cand if not stable(f) and max(agg[i]['incl'][f] / agg[i]['g'] for i in range(nb)) >= lowest]
    table(f"top {top} functions by inclusive Ir per GET (stable ones: runs agree within {INCL_TOL:.0%})", 'incl', pick)
    if left:
        print("   left out, inclusive unstable across runs (goroutine-switch artifacts; per-run values):")
        for f in left[:20]:
            per = '; '.join(lab[i] + ' ' + ' '.join(f"{r['incl'][f] / r['gets']:.0f}" for r in runs if r['idx'] == i) for i in range(nb))
            print(f"     {short(f)}: {per}")

    # self: union of top N, plus the largest per-GET self changes
    pick = []
    for i in range(nb):
        for fn, _ in agg[i]['self'].most_common(top):
            if fn not in pick:
                pick.append(fn)
    pick.sort(key=lambda f: -max(agg[i]['self'][f] / agg[i]['g'] for i in range(nb)))
    table(f"top {top} functions by self Ir per GET", 'self', pick)

    allf = set().union(*[set(a['self']) for a in agg])
    delta = lambda f: agg[-1]['self'][f] / agg[-1]['g'] - agg[0]['self'][f] / agg[0]['g']
    ch = sorted(allf, key=lambda f: -abs(delta(f)))[:top]
    table(f"{top} largest changes of self Ir per GET ({lab[nb - 1]} vs {lab[0]})", 'self', ch)


if __name__ == "__main__":
    main()
