//! Which local addresses listen on a port, read from /proc/net/tcp{,6}.

/// The local addresses in LISTEN state on `port`, e.g. `["127.0.0.1"]` or `["0.0.0.0"]`.
pub fn listening_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(table) = std::fs::read_to_string(file) else { continue };
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // cols[1] = local "ADDR:PORT" in hex, cols[3] = state; 0A = LISTEN.
            if cols.len() < 4 || cols[3] != "0A" {
                continue;
            }
            let Some((addr, p)) = cols[1].split_once(':') else { continue };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            out.push(if v6 { decode_v6(addr) } else { decode_v4(addr) });
        }
    }
    out
}

fn decode_v4(hex: &str) -> String {
    let n = u32::from_str_radix(hex, 16).unwrap_or(0);
    // The kernel prints the address in host (little-endian) byte order.
    let b = n.to_le_bytes();
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

fn decode_v6(hex: &str) -> String {
    let mut bytes = [0u8; 16];
    for (i, word) in (0..4).map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).unwrap_or(0)).enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    std::net::Ipv6Addr::from(bytes).to_string()
}
