#[test]
fn print_verdicts() {
    let outside = "/tmp/before/outside";
    for c in msbimage_testkit::breakout_cases(outside) {
        let mut verdict = String::from("ok");
        for (i, l) in c.layers.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            if let Err(e) = microsandbox_image::layer::fuzz_extract(l, dir.path()) {
                verdict = format!("layer {i}: {e}");
                break;
            }
        }
        println!("VERDICT {} | {}", c.name, verdict);
    }
}
