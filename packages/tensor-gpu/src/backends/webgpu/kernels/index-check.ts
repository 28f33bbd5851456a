// Index-error reporting shared by gather and scatterAdd: a kernel cannot throw, so the first thread that
// meets an index outside [0, size) records (flag, check id, index) in the runtime's small atomic error
// buffer and skips its write; the next read()/sync() reads the flag and throws IndexError naming the op.

export const REPORT_WGSL = (binding: number) => /* wgsl */ `
@group(0) @binding(${binding}) var<storage, read_write> ERR: array<atomic<u32>>;
fn report_bad_index(id: u32, bad: i32) {
  loop {
    let r = atomicCompareExchangeWeak(&ERR[0], 0u, 1u);
    if (r.exchanged) { atomicStore(&ERR[1], id); atomicStore(&ERR[2], bitcast<u32>(bad)); break; }
    if (r.old_value != 0u) { break; }
  }
}
`;
