//! Renders a synthetic CT-like volume (a water ellipse in air, a "liver" label with a "tumour" in it) to
//! a preview PNG, to see what `render_preview` draws:
//!
//! ```sh
//! cargo run -p nnu-render --example render_sphere -- /tmp/sphere.png
//! ```
use ndarray::Array3;
use nnu_render::{render_preview, PreviewOptions};
use nnu_volume::Geometry;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sphere.png".into());
    let (nz, ny, nx) = (40, 96, 128);
    let r2 = |z: f64, y: f64, x: f64, c: [f64; 3], r: [f64; 3]| {
        ((z - c[0]) / r[0]).powi(2) + ((y - c[1]) / r[1]).powi(2) + ((x - c[2]) / r[2]).powi(2)
    };
    let mut image = Array3::<f32>::from_elem((nz, ny, nx), -1000.0);
    let mut labels = Array3::<u8>::zeros((nz, ny, nx));
    for ((z, y, x), v) in image.indexed_iter_mut() {
        let (z, y, x) = (z as f64, y as f64, x as f64);
        if r2(0.0, y, x, [0.0, 48.0, 64.0], [1.0, 40.0, 58.0]) < 1.0 {
            *v = 0.0;
        }
        if r2(z, y, x, [20.0, 44.0, 40.0], [14.0, 24.0, 26.0]) < 1.0 {
            *v = 60.0;
            labels[[z as usize, y as usize, x as usize]] = 1;
        }
        if r2(z, y, x, [22.0, 40.0, 36.0], [3.0, 6.0, 6.0]) < 1.0 {
            *v = 20.0;
            labels[[z as usize, y as usize, x as usize]] = 2;
        }
    }
    let geometry = Geometry {
        spacing: [0.8, 0.8, 3.0],
        ..Geometry::default()
    };
    let opts = PreviewOptions {
        label_names: vec!["liver".into(), "tumour".into()],
        title: "synthetic".into(),
        ..PreviewOptions::default()
    };
    let png = render_preview(image.view(), labels.view(), &geometry, &opts)?;
    png.save_png(std::path::Path::new(&out))?;
    println!("{out}: {} x {}", png.width, png.height);
    Ok(())
}
