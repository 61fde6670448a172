package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

type cycledPackage struct {
	FileKey   string    `json:"file_key"`
	CreatedAt time.Time `json:"created_at"`
}

// remote is the part of a storage the cycler needs.
type remote interface {
	delete(key string) error
	readState(name string) ([]byte, bool)
	writeState(name string, content []byte) error
}

func store(c *config, m *model, key string, storage map[string]any, archive string) error {
	var target remote
	var err error
	fileKey := filepath.Base(archive)
	switch kind := text(storage, "type", ""); kind {
	case "minio", "s3":
		target, err = uploadS3(kind, storage, archive, fileKey)
	case "local":
		target, err = storeLocal(storage, archive, fileKey)
	default:
		err = fmt.Errorf("storage type %q is not supported by this stand-in", kind)
	}
	if err != nil {
		return err
	}
	return cycle(c, m.Name+"_"+key, number(storage, "keep", 0), fileKey, target)
}

type s3Remote struct {
	client *minio.Client
	bucket string
	prefix string
}

func (r *s3Remote) objectKey(key string) string { return path.Join(r.prefix, key) }

func (r *s3Remote) delete(key string) error {
	return r.client.RemoveObject(context.Background(), r.bucket, r.objectKey(key), minio.RemoveObjectOptions{})
}

func (r *s3Remote) readState(name string) ([]byte, bool) {
	// GoBackup reads the remote state back through a presigned GET.
	presigned, err := r.client.PresignedGetObject(context.Background(), r.bucket, r.objectKey(".gobackup-state/"+name), time.Minute, url.Values{})
	if err != nil {
		return nil, false
	}
	response, err := http.Get(presigned.String())
	if err != nil {
		return nil, false
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return nil, false
	}
	content, err := io.ReadAll(response.Body)
	return content, err == nil
}

func (r *s3Remote) writeState(name string, content []byte) error {
	_, err := r.client.PutObject(context.Background(), r.bucket, r.objectKey(".gobackup-state/"+name), bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{ContentType: "application/json"})
	return err
}

func uploadS3(kind string, storage map[string]any, archive, fileKey string) (remote, error) {
	endpoint, err := url.Parse(text(storage, "endpoint", ""))
	if err != nil || endpoint.Host == "" {
		return nil, fmt.Errorf("invalid endpoint %q", text(storage, "endpoint", ""))
	}
	lookup := minio.BucketLookupDNS
	if kind == "minio" || flag(storage, "force_path_style", false) {
		lookup = minio.BucketLookupPath
	}
	secret := text(storage, "secret_access_key", text(storage, "access_key_secret", ""))
	client, err := minio.New(endpoint.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(text(storage, "access_key_id", ""), secret, ""),
		Secure:       endpoint.Scheme == "https",
		Region:       text(storage, "region", "us-east-1"),
		BucketLookup: lookup,
		MaxRetries:   number(storage, "max_retries", 3),
	})
	if err != nil {
		return nil, err
	}
	target := &s3Remote{client: client, bucket: text(storage, "bucket", ""), prefix: text(storage, "path", "")}
	file, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	logger.tag("MinIO")
	logger.infof("-> Uploading (%s)...", humanize.Bytes(uint64(info.Size())))
	if kind == "s3" {
		logger.infof("=> s3://%s/%s", target.bucket, target.objectKey(fileKey))
	}
	// timeout bounds the whole upload, as GoBackup's HTTP client timeout does.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(number(storage, "timeout", 300))*time.Second)
	defer cancel()
	started := time.Now()
	_, err = client.PutObject(ctx, target.bucket, target.objectKey(fileKey), file, info.Size(), minio.PutObjectOptions{PartSize: 64 << 20, NumThreads: 1})
	if err != nil {
		return nil, fmt.Errorf("upload %s/%s/%s failed: %w", endpoint.String(), target.bucket, target.objectKey(fileKey), err)
	}
	logger.infof("Uploaded: %s/%s/%s (Duration %v)", endpoint.String(), target.bucket, target.objectKey(fileKey), time.Since(started).Round(time.Microsecond))
	return target, nil
}

type localRemote struct{ directory string }

func (r *localRemote) delete(key string) error { return os.Remove(filepath.Join(r.directory, key)) }

func (r *localRemote) readState(string) ([]byte, bool) { return nil, false }

// writeState fails for local storages in GoBackup v3.1.1; only the local
// cycler file keeps their keep-state.
func (r *localRemote) writeState(string, []byte) error {
	return fmt.Errorf("cp: cannot stat dummy: No such file or directory")
}

func storeLocal(storage map[string]any, archive, fileKey string) (remote, error) {
	directory := text(storage, "path", "")
	if directory == "" {
		return nil, fmt.Errorf("local storage needs a path")
	}
	if err := os.MkdirAll(directory, 0o750); err != nil {
		return nil, err
	}
	target := filepath.Join(directory, fileKey)
	if output, err := exec.Command("cp", "-a", archive, target).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("store to %s failed: %v: %s", target, err, output)
	}
	logger.tag("Local")
	logger.info("Store succeeded", target)
	return &localRemote{directory: directory}, nil
}

// cycle records the new archive and deletes the oldest beyond keep, using
// GoBackup's own state (remote copy first, then the local file), never a
// listing of the bucket.
func cycle(c *config, name string, keep int, fileKey string, target remote) error {
	localPath := filepath.Join(c.GoBackupDir, "cycler", name+".json")
	var packages []cycledPackage
	if content, found := target.readState(name + ".json"); found && json.Unmarshal(content, &packages) == nil {
		logger.tag("Cycler")
		logger.info("Loaded cycler state from remote storage")
	} else if content, err := os.ReadFile(localPath); err == nil {
		_ = json.Unmarshal(content, &packages)
	}
	packages = append(packages, cycledPackage{FileKey: fileKey, CreatedAt: time.Now().UTC()})
	if keep > 0 {
		for len(packages) > keep {
			logger.tag("Cycler")
			if err := target.delete(packages[0].FileKey); err != nil {
				logger.info("Remove", packages[0].FileKey, "failed:", err)
			} else {
				logger.info("Removed", packages[0].FileKey)
			}
			packages = packages[1:]
		}
	}
	content, err := json.Marshal(packages)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(localPath), 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(localPath, content, 0o640); err != nil {
		return err
	}
	logger.tag("Cycler")
	if err := target.writeState(name+".json", content); err != nil {
		logger.info("Failed to save cycler state to remote storage:", err)
	} else {
		logger.info("Saved cycler state to remote storage")
	}
	return nil
}
