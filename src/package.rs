//! Package stage: a reproducible `<app>-<version>-<target>.tar.gz` holding the binary, the
//! rendered units (the service, and the socket with `[service] listen`), manifest.json and the
//! project's extra files, plus a `.sha256` beside it.
//!
//! Reproducible means: manifest.json first (a reader finds it without inflating the payload),
//! then the files sorted, every mtime = the build time, uid/gid 0, explicit modes and a gzip
//! header without a timestamp, so one commit always gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use flate2::{Compression, GzBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::build::{self, Artifact, Target};
use crate::config::Config;
use crate::error::{Category, Tag, tagged};
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
    Ok(hash(&mut file, false)?.sha256)
}

/// What a reader held: its size and sha256, and its bytes when asked to keep them.
struct Hashed {
    size: u64,
    sha256: String,
    kept: Option<Vec<u8>>,
}

fn hash(reader: &mut impl Read, keep: bool) -> std::io::Result<Hashed> {
    let mut hasher = Sha256::new();
    let mut kept = keep.then(Vec::new);
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        if let Some(kept) = &mut kept {
            kept.extend_from_slice(&buffer[..n]);
        }
        size += n as u64;
    }
    Ok(Hashed {
        size,
        sha256: hex::encode(hasher.finalize()),
        kept,
    })
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

/// A package of app `app` and `version` for the unit tests and [`crate::scripts_check`], as
/// `Package::open` would read it: `size` bytes at `path`, one binary of `unpacked` bytes, the
/// service unit `unit`.
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
    /// Opens a package and reads its manifest and units, checking it belongs to `app` and holds
    /// exactly what its manifest lists: each file once, as a regular file under the very name
    /// listed, with its mode, size and sha256, and nothing else. Hosts then need to check only
    /// that they received these exact bytes, and unpack the names checked here. One pass over
    /// the file, which is hashed as a whole on the way.
    pub fn open(path: &Path, app: &str) -> Result<Package> {
        let file = File::open(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .tag(Category::Usage)?;
        let size = file.metadata()?.len();
        let bad = |error: anyhow::Error| {
            let error = match error.downcast::<Refusal>() {
                Ok(Refusal(why)) => anyhow::anyhow!(
                    "{}: {why}\n  help: build the package again with `shipit build`, and deploy \
                     it as built",
                    path.display()
                ),
                Err(error) => error.context(format!("{} is not a shipit package", path.display())),
            };
            tagged(Category::Usage, error)
        };
        let unit_name = format!("{app}.service");
        let socket_name = format!("{app}.socket");
        let (mut contents, sha256) =
            read_archive(file, &[MANIFEST, &unit_name, &socket_name]).map_err(bad)?;
        let manifest = contents
            .texts
            .get(MANIFEST)
            .ok_or_else(|| anyhow::anyhow!("it has no {MANIFEST}"))
            .and_then(|text| Ok(serde_json::from_str::<Manifest>(text)?))
            .map_err(bad)?;
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
            .map_err(bad)?;
        check_listed(&manifest).map_err(bad)?;
        Target::parse(&manifest.target).map_err(bad)?;
        check_entries(&manifest, &contents.seen).map_err(bad)?;
        let unit = contents
            .texts
            .remove(&unit_name)
            .ok_or_else(|| anyhow::anyhow!("it has no {unit_name}"))
            .map_err(bad)?;
        Ok(Package {
            path: path.to_path_buf(),
            sha256,
            size,
            manifest,
            unit,
            socket: contents.texts.remove(&socket_name),
        })
    }

    /// The binary's entry in the manifest; [`Package::open`] refuses a package without one.
    pub fn binary(&self) -> Option<&FileEntry> {
        self.manifest
            .files
            .iter()
            .find(|f| f.path == self.manifest.app)
    }

    /// The names [`Package::open`] checked, which are all a host unpacks of it.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(MANIFEST)
            .chain(self.manifest.files.iter().map(|f| f.path.as_str()))
            .collect()
    }
}

/// Why a package is refused, in one line that names the entry.
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

fn refuse<T>(why: String) -> Result<T> {
    Err(Refusal(why).into())
}

/// One entry of a package, as [`Package::open`] read it.
struct Seen {
    name: String,
    /// The permission bits of its header, which tar running as root gives the file.
    mode: u32,
    size: u64,
    sha256: String,
}

/// Every entry of a package, and the text of those asked for.
#[derive(Default)]
struct Contents {
    seen: Vec<Seen>,
    texts: BTreeMap<String, String>,
}

/// Reads a package: every entry hashed, the text of those named in `texts` kept, and the
/// sha256 of the whole file. What no package may hold is refused on the way: an entry that is
/// not a regular file ([`check_kind`]), a name seen before, anything after the archive's end.
fn read_archive(file: File, texts: &[&str]) -> Result<(Contents, String)> {
    let hashed = HashingReader {
        inner: BufReader::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
    };
    // Every gzip member, as `gzip -d` on the host reads them: a member appended after the
    // first is read here too, not skipped.
    let mut archive = tar::Archive::new(MultiGzDecoder::new(hashed));
    let mut contents = Contents::default();
    let mut names = BTreeSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = match String::from_utf8(entry.path_bytes().into_owned()) {
            Ok(name) => name,
            Err(e) => {
                let name = String::from_utf8_lossy(e.as_bytes()).into_owned();
                return refuse(format!("entry {name:?} is not named in UTF-8"));
            }
        };
        check_kind(&mut entry, &name)?;
        if !names.insert(name.clone()) {
            return refuse(format!(
                "entry {name:?} appears twice; unpacking the second would replace the first"
            ));
        }
        let mode = entry.header().mode()? & 0o7777;
        let hashed = hash(&mut entry, texts.contains(&name.as_str()))?;
        if let Some(text) = hashed.kept {
            contents
                .texts
                .insert(name.clone(), String::from_utf8(text)?);
        }
        contents.seen.push(Seen {
            name,
            mode,
            size: hashed.size,
            sha256: hashed.sha256,
        });
    }
    let mut decoder = archive.into_inner();
    if !only_zeros(&mut decoder)? {
        return refuse(
            "data follows the end of its tar archive, which tar programs read differently (GNU \
             tar stops at the first zero block, busybox reads on)"
                .into(),
        );
    }
    Ok((
        contents,
        hex::encode(decoder.into_inner().hasher.finalize()),
    ))
}

/// Refuses an entry that is not a plain regular file: tar would make a link, a device node, a
/// FIFO or a directory of it, as the archive says. A pax header (which shipit never writes)
/// can rename or resize the entry after it, and tar programs do not agree on which keys count.
fn check_kind<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<()> {
    let what = match entry.header().entry_type() {
        tar::EntryType::Regular => None,
        tar::EntryType::Symlink => Some("a symbolic link".to_string()),
        tar::EntryType::Link => Some("a hard link".to_string()),
        tar::EntryType::Char | tar::EntryType::Block => Some("a device node".to_string()),
        tar::EntryType::Fifo => Some("a FIFO".to_string()),
        tar::EntryType::Directory => Some("a directory".to_string()),
        other => Some(format!("a tar entry of type {:?}", other.as_byte() as char)),
    };
    if let Some(what) = what {
        return refuse(format!(
            "entry {name:?} is {what}; a package holds regular files only"
        ));
    }
    if entry.pax_extensions()?.is_some() {
        return refuse(format!(
            "entry {name:?} comes with a pax extended header, which shipit never writes"
        ));
    }
    Ok(())
}

/// Whether all that is left in `reader` is zeros.
fn only_zeros(reader: &mut impl Read) -> std::io::Result<bool> {
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(true);
        }
        if buffer[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

/// The modes a release may hold: no setuid, setgid or sticky bit, nothing others may write.
const MODES: u32 = 0o755;

/// Checks the manifest's own list: each path once, relative, and written the one way tar
/// writes it, with a sha256 and a mode a release may hold; the app's binary among them.
fn check_listed(manifest: &Manifest) -> Result<()> {
    let mut paths = BTreeSet::new();
    for file in &manifest.files {
        let path = &file.path;
        if let Err(why) = crate::validate::validate_relative_path(path) {
            return refuse(format!("manifest.json lists {path:?}: {why}"));
        }
        let plain = plain(path);
        if plain != *path {
            return refuse(format!(
                "manifest.json lists {path:?}, which tar unpacks as {plain:?}"
            ));
        }
        if !paths.insert(path) {
            return refuse(format!("manifest.json lists {path:?} twice"));
        }
        if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return refuse(format!("manifest.json gives {path:?} a bad sha256"));
        }
        match u32::from_str_radix(&file.mode, 8) {
            Ok(mode) if mode & !MODES == 0 => {}
            _ => {
                return refuse(format!(
                    "manifest.json gives {path:?} mode {:?}; a release holds no setuid, setgid \
                     or sticky file, and none that others may write",
                    file.mode
                ));
            }
        }
    }
    if !paths.contains(&manifest.app) {
        return refuse(format!(
            "manifest.json does not list the app's binary, {:?}",
            manifest.app
        ));
    }
    Ok(())
}

/// Checks what the package holds against what its manifest lists (checked by
/// [`check_listed`]): each listed file under the very name listed, with its mode, size and
/// sha256, and nothing else but manifest.json.
fn check_entries(manifest: &Manifest, seen: &[Seen]) -> Result<()> {
    let listed: BTreeMap<&str, &FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for entry in seen {
        let name = entry.name.as_str();
        if name == MANIFEST {
            if entry.mode & !MODES != 0 {
                return refuse(format!(
                    "entry {name:?} has mode {:04o}; a release holds no setuid, setgid or \
                     sticky file, and none that others may write",
                    entry.mode
                ));
            }
            continue;
        }
        let Some(file) = listed.get(name) else {
            return refuse(format!("entry {name:?} {}", unlisted(name, &listed)));
        };
        if entry.size != file.size || entry.sha256 != file.sha256 {
            return refuse(format!(
                "entry {name:?} differs from what manifest.json says (size or sha256); the \
                 package is damaged"
            ));
        }
        if u32::from_str_radix(&file.mode, 8) != Ok(entry.mode) {
            return refuse(format!(
                "entry {name:?} has mode {:04o}, but manifest.json says {}",
                entry.mode, file.mode
            ));
        }
    }
    for file in &manifest.files {
        if !seen.iter().any(|s| s.name == file.path) {
            return refuse(format!(
                "manifest.json lists {:?}, which the package does not hold",
                file.path
            ));
        }
    }
    Ok(())
}

/// Why a name the manifest does not list is refused.
fn unlisted(name: &str, listed: &BTreeMap<&str, &FileEntry>) -> String {
    if name.starts_with('/') {
        return "is an absolute path, outside the release".to_string();
    }
    if name.split('/').any(|part| part == "..") {
        return "has a `..` component, which reaches outside the release".to_string();
    }
    let plain = plain(name);
    if listed.contains_key(plain.as_str()) || plain == MANIFEST {
        return format!("is another name for {plain}, which unpacking it would replace");
    }
    "is not listed in manifest.json".to_string()
}

/// `name` without empty and `.` components: the file tar writes for it.
fn plain(name: &str) -> String {
    name.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests;
