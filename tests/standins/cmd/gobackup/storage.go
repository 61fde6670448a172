package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"
	"github.com/aws/aws-sdk-go/service/s3/s3manager"
	"github.com/spf13/viper"
)

// fileItem is an entry of /api/list.
type fileItem struct {
	Filename     string    `json:"filename,omitempty"`
	Size         int64     `json:"size,omitempty"`
	LastModified time.Time `json:"last_modified,omitempty"`
}

// storageBase is what every storage shares. When archivePath is a directory
// (split chunks), fileKeys holds "<dir>/<chunk>" for each file in it.
type storageBase struct {
	model       modelConfig
	archivePath string
	fileKeys    []string
	viper       *viper.Viper
	keep        int
	cycler      *cycler
}

type storage interface {
	base() *storageBase
	open() error
	upload(fileKey string) error
	delete(fileKey string) error
	list(parent string) ([]fileItem, error)
	// download returns a URL for the FULL remote key (path included).
	download(fileKey string) (string, error)
}

// upstreamStorages are GoBackup's other storage types: the stand-in does not
// implement them and says so. Any type not known upstream at all leaves
// GoBackup with a nil storage whose use panics; the model's recover then
// counts the run as a success, as upstream.
var upstreamStorages = map[string]bool{
	"webdav": true, "ftp": true, "scp": true, "sftp": true, "oss": true, "gcs": true, "b2": true, "us3": true,
	"cos": true, "kodo": true, "r2": true, "spaces": true, "bos": true, "obs": true, "tos": true, "upyun": true, "azure": true,
}

func newStorage(m modelConfig, archivePath string, config subConfig) (storage, error) {
	cyclerName := m.name
	if config.name != "" {
		cyclerName = m.name + "_" + config.name
	}
	shared := storageBase{model: m, archivePath: archivePath, viper: config.viper, cycler: &cycler{name: cyclerName}}
	if info, err := os.Stat(archivePath); err == nil && info.IsDir() {
		entries, err := os.ReadDir(archivePath)
		if err != nil {
			panic(err)
		}
		for _, entry := range entries {
			if !entry.IsDir() {
				shared.fileKeys = append(shared.fileKeys, filepath.Join(filepath.Base(archivePath), entry.Name()))
			}
		}
	}
	if shared.viper != nil {
		shared.keep = shared.viper.GetInt("keep")
	}
	switch config.kind {
	case "local":
		return &localStorage{storageBase: shared}, nil
	case "s3", "minio":
		return &s3Storage{storageBase: shared, service: config.kind}, nil
	}
	if upstreamStorages[config.kind] {
		return nil, fmt.Errorf("storage type %s is not supported by the GoBackup stand-in", config.kind)
	}
	logger.errorf("[%s] storage type has not implement.", config.kind)
	return nil, nil
}

func runStorage(m modelConfig, archivePath string, config subConfig) error {
	lg := tag("Storage")
	fileKey := filepath.Base(archivePath)
	target, err := newStorage(m, archivePath, config)
	lg.info("=> Storage | " + config.kind)
	if err != nil {
		return err
	}
	if err := target.open(); err != nil {
		return err
	}
	if err := target.upload(fileKey); err != nil {
		return err
	}
	shared := target.base()
	shared.cycler.run(target, fileKey, shared.fileKeys, shared.keep)
	return nil
}

// runStorages stores the archive to every storage in map (random) order; a
// failure does not stop the others, but fails the run.
func runStorages(m modelConfig, archivePath string) error {
	var errs []error
	for _, config := range m.storages {
		if err := runStorage(m, archivePath, config); err != nil {
			if len(m.storages) == 1 {
				return err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) != 0 {
		return fmt.Errorf("Storage errors: %v", errs)
	}
	return nil
}

func defaultStorage(m modelConfig) (storage, error) {
	config, found := m.storages[m.defaultStorage]
	if !found {
		return nil, fmt.Errorf("Storage %s not found", m.defaultStorage)
	}
	target, err := newStorage(m, "", config)
	if err != nil {
		return nil, err
	}
	return target, target.open()
}

func listStorage(m modelConfig, parent string) ([]fileItem, error) {
	target, err := defaultStorage(m)
	if err != nil {
		return nil, err
	}
	if parent == "" {
		parent = "/"
	}
	items, err := target.list(parent)
	if err != nil {
		return []fileItem{}, err
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].LastModified.Equal(items[j].LastModified) {
			return items[i].Filename > items[j].Filename
		}
		return items[i].LastModified.After(items[j].LastModified)
	})
	return items, nil
}

func downloadURL(m modelConfig, fileKey string) (string, error) {
	target, err := defaultStorage(m)
	if err != nil {
		return "", err
	}
	return target.download(fileKey)
}

// localStorage copies the archive with `cp -a` into path (relative paths
// are relative to the working directory when the config was loaded).
type localStorage struct {
	storageBase
	path string
}

func (s *localStorage) base() *storageBase { return &s.storageBase }

func (s *localStorage) open() error {
	s.path = s.viper.GetString("path")
	return mkdirP(s.path)
}

func (s *localStorage) upload(fileKey string) error {
	lg := tag("Local")
	if !path.IsAbs(s.path) {
		s.path = path.Join(s.model.workDir, s.path)
	}
	target := path.Join(s.path, fileKey)
	if err := mkdirP(path.Dir(target)); err != nil {
		lg.errorf("failed to mkdir %q, %v", path.Dir(target), err)
	}
	// The cycler "uploads" its state through here with archivePath set to
	// a file that does not exist: cp fails and the state stays local only.
	if _, err := run("cp", false, "-a", s.archivePath, target); err != nil {
		return err
	}
	lg.info("Store succeeded", target)
	return nil
}

func (s *localStorage) delete(fileKey string) error {
	target := filepath.Join(s.path, fileKey)
	logger.info("Deleting", target)
	return os.Remove(target)
}

func (s *localStorage) list(parent string) ([]fileItem, error) {
	entries, err := os.ReadDir(filepath.Join(s.path, parent))
	if err != nil {
		return nil, err
	}
	items := []fileItem{}
	for _, entry := range entries {
		if info, err := entry.Info(); err == nil && !entry.IsDir() {
			items = append(items, fileItem{Filename: info.Name(), Size: info.Size(), LastModified: info.ModTime()})
		}
	}
	return items, nil
}

func (s *localStorage) download(string) (string, error) {
	return "", fmt.Errorf("Local is not support download")
}

// s3Storage is GoBackup's S3 driver for `s3` and `minio`: aws-sdk-go's
// s3manager, 64 MiB parts (more when 10000 parts would not do), one part at
// a time, path-style by default, and `timeout` as the http.Client timeout,
// which bounds every single request (each part), not the whole upload.
type s3Storage struct {
	storageBase
	service, bucket, path, storageClass string
	client                              *s3manager.Uploader
}

func (s *s3Storage) base() *storageBase { return &s.storageBase }

func (s *s3Storage) providerName() string {
	if s.service == "minio" {
		return "MinIO"
	}
	return "AWS S3"
}

func (s *s3Storage) open() error {
	defaultClass := "STANDARD_IA"
	if s.service == "minio" {
		defaultClass = ""
	}
	s.viper.SetDefault("region", "us-east-1")
	s.viper.SetDefault("endpoint", "")
	s.viper.SetDefault("max_retries", 3)
	s.viper.SetDefault("timeout", "300")
	s.viper.SetDefault("storage_class", defaultClass)
	lg := tag(s.providerName())

	cfg := aws.NewConfig()
	if endpoint := s.viper.GetString("endpoint"); endpoint != "" {
		cfg.Endpoint = aws.String(endpoint)
	}
	cfg.S3ForcePathStyle = aws.Bool(true)
	if s.viper.IsSet("force_path_style") {
		cfg.S3ForcePathStyle = aws.Bool(s.viper.GetBool("force_path_style"))
	}
	keyID, secret := s.viper.GetString("access_key_id"), s.viper.GetString("secret_access_key")
	if secret == "" {
		secret = s.viper.GetString("access_key_secret")
	}
	if keyID == "" || secret == "" {
		lg.warn("`access_key_id` or `secret_access_key` is empty.")
	}
	cfg.Credentials = credentials.NewStaticCredentials(keyID, secret, s.viper.GetString("token"))
	cfg.Region = aws.String(s.viper.GetString("region"))
	cfg.MaxRetries = aws.Int(s.viper.GetInt("max_retries"))
	s.bucket, s.path, s.storageClass = s.viper.GetString("bucket"), s.viper.GetString("path"), s.viper.GetString("storage_class")
	cfg.HTTPClient = &http.Client{Timeout: time.Duration(s.viper.GetInt("timeout")) * time.Second}
	s.client = s3manager.NewUploader(session.Must(session.NewSession(cfg)))
	return nil
}

func (s *s3Storage) upload(fileKey string) error {
	lg := tag(s.providerName())
	keys := s.fileKeys
	if len(keys) == 0 {
		keys = []string{fileKey}
	}
	for _, key := range keys {
		source := filepath.Join(filepath.Dir(s.archivePath), key)
		remote := filepath.Join(s.path, key)
		file, err := os.Open(source)
		if err != nil {
			return fmt.Errorf("failed to open file %q, %v", source, err)
		}
		defer file.Close()
		progress := newProgressBar(lg, file)
		input := &s3manager.UploadInput{Bucket: aws.String(s.bucket), Key: aws.String(remote), Body: progress.reader}
		if s.storageClass != "" {
			input.StorageClass = aws.String(s.storageClass)
		}
		result, err := s.client.Upload(input, func(uploader *s3manager.Uploader) {
			partSize := int64(64 << 20)
			if progress.size/partSize > 10000 {
				partSize = int64(math.Ceil(float64(progress.size) / 10000))
			}
			uploader.Concurrency = 1
			uploader.LeavePartsOnError = false
			uploader.PartSize = partSize
		})
		if err != nil {
			return progress.fail("%v", err)
		}
		progress.done(result.Location)
		if s.service == "s3" {
			lg.info("=>", fmt.Sprintf("s3://%s/%s", s.bucket, remote))
		}
	}
	return nil
}

// delete removes the key without a version ID, as upstream: on a versioned
// (object lock) bucket that adds a delete marker and the version stays.
// Upstream v3.1.1 was observed uploading to a locked MinIO bucket without
// Content-MD5, single and multipart alike; this does the same calls.
func (s *s3Storage) delete(fileKey string) error {
	_, err := s.client.S3.DeleteObject(&s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(filepath.Join(s.path, fileKey))})
	return err
}

func (s *s3Storage) list(parent string) ([]fileItem, error) {
	prefix := filepath.Join(s.path, parent)
	var items []fileItem
	token := ""
	for {
		input := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)}
		if token != "" {
			input.ContinuationToken = aws.String(token)
		}
		result, err := s.client.S3.ListObjectsV2(input)
		if err != nil {
			return nil, fmt.Errorf("failed to list objects, %v", err)
		}
		for _, object := range result.Contents {
			items = append(items, fileItem{Filename: *object.Key, Size: *object.Size, LastModified: *object.LastModified})
		}
		if !*result.IsTruncated {
			return items, nil
		}
		token = *result.NextContinuationToken
	}
}

func (s *s3Storage) download(fileKey string) (string, error) {
	request, _ := s.client.S3.GetObjectRequest(&s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(fileKey)})
	url, err := request.Presign(time.Hour)
	if err != nil {
		return "", fmt.Errorf("failed to sign request, %v", err)
	}
	return url, nil
}
