package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The cycler implements `keep` from GoBackup's own record of what it wrote,
// never from a listing: $GOBACKUP_DIR/cycler/<model>_<storage>.json, and a
// copy uploaded to <path>/.gobackup-state/<model>_<storage>.json, read back
// first through the storage's download URL (a presigned GET for S3).

type cyclerPackage struct {
	FileKey   string    `json:"file_key"`
	FileKeys  []string  `json:"file_keys,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

var cyclerPath = filepath.Join(goBackupDir, "cycler")

const remoteStatePath = ".gobackup-state"

type cycler struct {
	name     string
	packages []cyclerPackage
	isLoaded bool
}

func (c *cycler) run(target storage, fileKey string, fileKeys []string, keep int) {
	lg := tag("Cycler")
	localFile := filepath.Join(cyclerPath, c.name+".json")
	remoteKey := filepath.Join(remoteStatePath, c.name+".json")
	c.loadRemote(target, localFile, remoteKey)
	c.packages = append(c.packages, cyclerPackage{FileKey: fileKey, FileKeys: fileKeys, CreatedAt: time.Now()})
	defer c.saveRemote(target, localFile, remoteKey)
	if keep == 0 {
		return
	}
	for len(c.packages) > keep {
		oldest := c.packages[0]
		c.packages = c.packages[1:]
		key := oldest.FileKey
		if len(oldest.FileKeys) != 0 && !strings.HasSuffix(key, "/") {
			key += "/"
		}
		for _, each := range append(oldest.FileKeys, key) {
			if err := target.delete(each); err != nil {
				lg.warnf("Remove %s failed: %v", each, err)
			} else {
				lg.info("Removed", each)
			}
		}
	}
}

func (c *cycler) loadRemote(target storage, localFile, remoteKey string) {
	lg := tag("Cycler")
	fullKey := remoteKey
	if settings := target.base().viper; settings != nil {
		if prefix := settings.GetString("path"); prefix != "" {
			fullKey = filepath.Join(prefix, remoteKey)
		}
	}
	url, err := target.download(fullKey)
	switch {
	case err != nil:
		lg.infof("Remote cycler state not found or unavailable: %v, falling back to local", err)
	case url != "":
		response, err := http.Get(url)
		if err != nil {
			lg.infof("Failed to fetch remote cycler state: %v, falling back to local", err)
			break
		}
		defer response.Body.Close()
		if response.StatusCode != http.StatusOK {
			lg.infof("Remote cycler state not found (HTTP %d), falling back to local", response.StatusCode)
			break
		}
		content, err := io.ReadAll(response.Body)
		if err != nil || len(content) == 0 {
			break
		}
		if err := json.Unmarshal(content, &c.packages); err != nil {
			lg.warnf("Failed to unmarshal remote cycler state: %v", err)
			break
		}
		lg.info("Loaded cycler state from remote storage")
		c.isLoaded = true
		c.save(localFile)
		return
	}
	c.load(localFile)
}

func (c *cycler) load(localFile string) {
	lg := tag("Cycler")
	if err := mkdirP(cyclerPath); err != nil {
		lg.errorf("Failed to mkdir cycler path %s: %v", cyclerPath, err)
		return
	}
	if !pathExists(localFile) {
		if err := os.WriteFile(localFile, []byte("[]"), 0o660); err != nil {
			lg.errorf("Failed to write file %s: %v", localFile, err)
			return
		}
	}
	content, err := os.ReadFile(localFile)
	if err != nil {
		lg.error("Load cycler.json failed:", err)
		return
	}
	if err := json.Unmarshal(content, &c.packages); err != nil {
		lg.error("Unmarshal cycler.json failed:", err)
	}
	c.isLoaded = true
}

// saveRemote uploads the state through the storage's own upload, pointed at
// a temp dir; for a local storage that copies "<tmp>/dummy", which does not
// exist, so every run logs "Failed to save cycler state to remote storage".
func (c *cycler) saveRemote(target storage, localFile, remoteKey string) {
	lg := tag("Cycler")
	if !c.isLoaded {
		lg.warn("Skip save cycler.json because it is not loaded")
		return
	}
	content, err := json.Marshal(&c.packages)
	if err != nil {
		lg.error("Marshal packages to cycler.json failed: ", err)
		return
	}
	defer c.save(localFile)
	tmpDir, err := os.MkdirTemp(cyclerPath, "cycler-state-*")
	if err != nil {
		lg.warnf("Failed to create temp directory for state: %v", err)
		return
	}
	defer os.RemoveAll(tmpDir)
	tmpFile := filepath.Join(tmpDir, remoteKey)
	if err := os.MkdirAll(filepath.Dir(tmpFile), 0o755); err != nil {
		lg.warnf("Failed to create temp directory structure: %v", err)
		return
	}
	if err := os.WriteFile(tmpFile, content, 0o660); err != nil {
		lg.warnf("Failed to write state to temp file: %v", err)
		return
	}
	shared := target.base()
	archivePath, fileKeys := shared.archivePath, shared.fileKeys
	shared.archivePath, shared.fileKeys = filepath.Join(tmpDir, "dummy"), nil
	if err := target.upload(remoteKey); err != nil {
		lg.warnf("Failed to save cycler state to remote storage: %v", err)
	} else {
		lg.info("Saved cycler state to remote storage")
	}
	shared.archivePath, shared.fileKeys = archivePath, fileKeys
}

func (c *cycler) save(localFile string) {
	lg := tag("Cycler")
	if err := mkdirP(cyclerPath); err != nil {
		lg.errorf("Failed to mkdir cycler path %s: %v", cyclerPath, err)
		return
	}
	content, err := json.Marshal(&c.packages)
	if err != nil {
		lg.error("Marshal packages to cycler.json failed: ", err)
		return
	}
	if err := os.WriteFile(localFile, content, 0o660); err != nil {
		lg.error("Save cycler.json failed: ", err)
	}
}
