//! Package stage: a reproducible `<app>-<version>-<target>.tar.gz` holding the binary, the
//! rendered units (the service, and the socket with `[service] listen`), manifest.json and the
//! project's extra files, plus a `.sha256` beside it.
//!
//! Reproducible means: manifest.json first (a reader finds it without inflating the payload),
//! then the files sorted, every mtime = the build time, uid/gid 0, explicit modes and a gzip
//! header without a timestamp, so one commit always gives the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::build::{self, Artifact, Target};
use crate::config::Config;
use crate::error::{Category, Tag};
use crate::ui::Ui;
use crate::unit::Units;

pub const MANIFEST: &str = "manifest.json";

/// manifest.json: what is in the package and how it was made. Deploy reads it back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub app: String,
    pub version: String,
    pub commit: Option<String>,
    pub build_time: String,
    pub target: String,
    pub builder: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    /// Octal, as in `chmod`.
    pub mode: String,
    pub size: u64,
    pub sha256: String,
}

/// One file going into the archive.
struct Entry {
    path: String,
    mode: u32,
    source: EntrySource,
}

enum EntrySource {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// What to build, from the command line.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub target: Target,
    /// Instead of shipit.toml's version or `git describe`.
    pub version_override: Option<String>,
    /// Where the package goes (default: the project's dist/).
    pub out_dir: Option<PathBuf>,
}

/// `shipit build`: build, render the unit, package; returns the archive path.
pub fn build_and_package(config: &Config, options: &BuildOptions, ui: &Ui) -> Result<PathBuf> {
    let target = options.target;
    let out_dir = options
        .out_dir
        .clone()
        .unwrap_or_else(|| config.root.join("dist"));
    let units = crate::unit::render(config)?;
    crate::unit::check_names(&config.app.name, &units, ui)?;
    let artifact = crate::timings::time("build", || {
        build::build(
            config,
            target,
            options.version_override.as_deref(),
            &out_dir.join(".build"),
            ui,
        )
    })?;
    let spinner = ui.spinner("packaging");
    let archive = crate::timings::time("package", || {
        write_package(config, &artifact, &units, &out_dir).tag(Category::Build)
    });
    spinner.finish_and_clear();
    let archive = archive?;
    ui.status("Packaged", archive.display());
    Ok(archive)
}

pub fn archive_name(app: &str, version: &str, target: Target) -> String {
    format!("{app}-{version}-{target}.tar.gz")
}

fn write_package(
    config: &Config,
    artifact: &Artifact,
    units: &Units,
    out_dir: &Path,
) -> Result<PathBuf> {
    let app = &config.app.name;
    let mut entries = vec![Entry {
        path: app.to_string(),
        mode: 0o755,
        source: EntrySource::File(artifact.path.clone()),
    }];
    entries.extend(units.files(app).into_iter().map(|(name, text)| Entry {
        path: name,
        mode: 0o644,
        source: EntrySource::Bytes(text.as_bytes().to_vec()),
    }));
    entries.extend(config.service.files.iter().map(|file| Entry {
        path: file.clone(),
        mode: 0o644,
        source: EntrySource::File(config.root.join(file)),
    }));
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        app: app.to_string(),
        version: artifact.stamp.version.clone(),
        commit: artifact.stamp.commit.clone(),
        build_time: artifact.stamp.build_time(),
        target: artifact.target.name().to_string(),
        builder: artifact.builder.clone(),
        files: entries.iter().map(file_entry).collect::<Result<_>>()?,
    };
    let mut manifest_json = serde_json::to_vec_pretty(&manifest)?;
    manifest_json.push(b'\n');
    entries.insert(
        0,
        Entry {
            path: MANIFEST.to_string(),
            mode: 0o644,
            source: EntrySource::Bytes(manifest_json),
        },
    );

    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let name = archive_name(app, &manifest.version, artifact.target);
    let archive = out_dir.join(&name);
    // Written under a temporary name and renamed, so an interrupted build never leaves a
    // truncated archive that looks complete.
    let mut temp = tempfile::NamedTempFile::new_in(out_dir)
        .with_context(|| format!("cannot write in {}", out_dir.display()))?;
    write_archive(
        temp.as_file_mut(),
        &entries,
        artifact.stamp.build_time_epoch,
    )
    .with_context(|| format!("writing {}", archive.display()))?;
    // Packages are not secret; NamedTempFile's private 0600 would surprise whoever serves them.
    std::fs::set_permissions(
        temp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    temp.persist(&archive)
        .with_context(|| format!("cannot create {}", archive.display()))?;
    let digest = sha256_file(&archive)?;
    let sums = out_dir.join(format!("{name}.sha256"));
    std::fs::write(&sums, format!("{digest}  {name}\n"))
        .with_context(|| format!("cannot write {}", sums.display()))?;
    Ok(archive)
}

fn file_entry(entry: &Entry) -> Result<FileEntry> {
    let (size, sha256) = match &entry.source {
        EntrySource::File(path) => (
            std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .len(),
            sha256_file(path)?,
        ),
        EntrySource::Bytes(bytes) => (bytes.len() as u64, hex::encode(Sha256::digest(bytes))),
    };
    Ok(FileEntry {
        path: entry.path.clone(),
        mode: format!("{:04o}", entry.mode),
        size,
        sha256,
    })
}

fn write_archive(file: &mut File, entries: &[Entry], mtime: u64) -> Result<()> {
    // No name and mtime 0 in the gzip header: the archive's bytes depend on its content only.
    let gzip = GzBuilder::new().mtime(0).write(
        BufWriter::with_capacity(1 << 20, file),
        Compression::default(),
    );
    let mut tar = tar::Builder::new(gzip);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(entry.mode);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        match &entry.source {
            EntrySource::File(path) => {
                let file =
                    File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
                header.set_size(file.metadata()?.len());
                tar.append_data(
                    &mut header,
                    &entry.path,
                    BufReader::with_capacity(1 << 20, file),
                )?;
            }
            EntrySource::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, &entry.path, bytes.as_slice())?;
            }
        }
    }
    let mut buffered = tar.into_inner()?.finish()?;
    buffered.flush()?;
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..n]);
        Ok(n)
    }
}

/// A package on disk, as deploy sees it.
#[derive(Debug, Clone)]
pub struct Package {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub manifest: Manifest,
    /// The rendered service unit inside, which each host gets as its systemd release allows.
    pub unit: String,
    /// The socket unit inside, for a package built with `[service] listen`.
    pub socket: Option<String>,
}

/// A package of app `app` and `version` for the unit tests, as `Package::open` would read it:
/// `size` bytes at `path`, one binary of `unpacked` bytes, the service unit `unit`.
#[cfg(test)]
pub(crate) fn fixture(path: &Path, version: &str, size: u64, unpacked: u64, unit: &str) -> Package {
    Package {
        path: path.to_path_buf(),
        sha256: "ab".repeat(32),
        size,
        manifest: Manifest {
            app: "app".into(),
            version: version.into(),
            commit: None,
            build_time: String::new(),
            target: "linux-amd64".into(),
            builder: "go".into(),
            files: vec![FileEntry {
                path: "app".into(),
                mode: "0755".into(),
                size: unpacked,
                sha256: "cd".repeat(32),
            }],
        },
        unit: unit.into(),
        socket: None,
    }
}

impl Package {
    /// Opens a package and reads its manifest and unit, checking it belongs to `app` and that
    /// every file in it is what the manifest says (size and sha256): hosts then need to check
    /// only that they received these exact bytes. One pass over the file, which is hashed as a
    /// whole on the way.
    pub fn open(path: &Path, app: &str) -> Result<Package> {
        let context = || format!("{} is not a shipit package", path.display());
        let file = File::open(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .tag(Category::Usage)?;
        let size = file.metadata()?.len();
        let hashed = HashingReader {
            inner: BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        };
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(hashed));
        let mut manifest = None;
        let mut unit = None;
        let mut socket = None;
        let mut contents: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let unit_name = format!("{app}.service");
        let socket_name = format!("{app}.socket");
        for entry in archive
            .entries()
            .with_context(context)
            .tag(Category::Usage)?
        {
            let mut entry = entry.with_context(context).tag(Category::Usage)?;
            let name = entry
                .path()
                .with_context(context)
                .tag(Category::Usage)?
                .to_string_lossy()
                .into_owned();
            if name == MANIFEST || name == unit_name || name == socket_name {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .with_context(context)
                    .tag(Category::Usage)?;
                if name == MANIFEST {
                    manifest = Some(text);
                    continue;
                }
                let digest = hex::encode(Sha256::digest(text.as_bytes()));
                let is_socket = name == socket_name;
                contents.insert(name, (text.len() as u64, digest));
                if is_socket {
                    socket = Some(text);
                } else {
                    unit = Some(text);
                }
                continue;
            }
            let mut hasher = Sha256::new();
            let mut buffer = vec![0; 1 << 16];
            let mut length = 0u64;
            loop {
                let n = entry
                    .read(&mut buffer)
                    .with_context(context)
                    .tag(Category::Usage)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                length += n as u64;
            }
            contents.insert(name, (length, hex::encode(hasher.finalize())));
        }
        // The rest of the gzip stream (its CRC and length) goes through the hash too.
        let mut decoder = archive.into_inner();
        std::io::copy(&mut decoder, &mut std::io::sink())
            .with_context(context)
            .tag(Category::Usage)?;
        let mut hashed = decoder.into_inner();
        std::io::copy(&mut hashed, &mut std::io::sink())
            .with_context(context)
            .tag(Category::Usage)?;
        let sha256 = hex::encode(hashed.hasher.finalize());
        let manifest = manifest
            .ok_or_else(|| anyhow::anyhow!("it has no {MANIFEST}"))
            .and_then(|text| Ok(serde_json::from_str::<Manifest>(&text)?))
            .with_context(context)
            .tag(Category::Usage)?;
        if manifest.app != app {
            crate::fail!(
                Usage,
                "{} is a package of {:?}, but shipit.toml describes {app:?}",
                path.display(),
                manifest.app
            );
        }
        crate::validate::validate_version(&manifest.version)
            .map_err(anyhow::Error::msg)
            .with_context(context)
            .tag(Category::Usage)?;
        for file in &manifest.files {
            crate::validate::validate_relative_path(&file.path)
                .map_err(anyhow::Error::msg)
                .with_context(context)
                .tag(Category::Usage)?;
            anyhow::ensure!(
                file.sha256.len() == 64 && file.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                "bad sha256 for {}",
                file.path
            );
        }
        Target::parse(&manifest.target).with_context(context)?;
        for file in &manifest.files {
            match contents.get(&file.path) {
                Some((length, digest)) if *length == file.size && *digest == file.sha256 => {}
                Some(_) => crate::fail!(
                    Usage,
                    "{}: {} differs from what its manifest.json says (size or sha256); the \
                     package is damaged\n  help: build it again",
                    path.display(),
                    file.path
                ),
                None => crate::fail!(
                    Usage,
                    "{}: manifest.json lists {}, which the package does not hold",
                    path.display(),
                    file.path
                ),
            }
        }
        let unit = unit
            .ok_or_else(|| anyhow::anyhow!("it has no {unit_name}"))
            .with_context(context)
            .tag(Category::Usage)?;
        Ok(Package {
            path: path.to_path_buf(),
            sha256,
            size,
            manifest,
            unit,
            socket,
        })
    }
}
