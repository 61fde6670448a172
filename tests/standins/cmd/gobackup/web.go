package main

import (
	"bufio"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/gin-contrib/static"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stoicperlman/fls"
)

// The web server is gin in release mode with its default logger, so every
// request is logged as `[GIN] … | GET "/status"`. Basic auth is added after
// the routes, so it guards only the static UI, never /status, /metrics or
// /api/*.

//go:embed dist
var staticFiles embed.FS

var logFile *os.File

type staticFileSystem struct{ http.FileSystem }

func (s staticFileSystem) Exists(_ string, name string) bool {
	file, err := s.Open(name)
	if err != nil {
		return false
	}
	defer file.Close()
	return true
}

func startHTTP() (err error) {
	lg := tag("API")
	if webConfig.Password == "" {
		lg.warn("You are running with insecure API server. Please don't forget setup `web.password` in config file for more safety.")
	}
	if logFile, err = os.Open(logFilePath); err != nil {
		return err
	}
	defer logFile.Close()
	lg.infof("Starting API server on port http://%s:%s", webConfig.Host, webConfig.Port)
	if os.Getenv("GO_ENV") != "dev" {
		gin.SetMode(gin.ReleaseMode)
	}
	router := gin.Default()
	router.GET("/status", func(c *gin.Context) {
		c.JSON(200, gin.H{"message": "GoBackup is running.", "version": version})
	})
	router.GET("/metrics", gin.WrapH(promhttp.Handler()))
	router.Use(func(c *gin.Context) {
		c.Next()
		if len(c.Errors) != 0 {
			c.AbortWithStatusJSON(c.Writer.Status(), gin.H{"message": c.Errors.String()})
		}
	})
	api := router.Group("/api")
	api.GET("/config", apiConfig)
	api.GET("/list", apiList)
	api.GET("/download", apiDownload)
	api.POST("/perform", apiPerform)
	api.GET("/log", apiLog)
	if webConfig.Username != "" && webConfig.Password != "" {
		router.Use(gin.BasicAuth(gin.Accounts{webConfig.Username: webConfig.Password}))
	}
	dist, _ := fs.Sub(staticFiles, "dist")
	files := staticFileSystem{http.FS(dist)}
	router.Use(static.Serve("/", files))
	router.NoRoute(func(c *gin.Context) { c.FileFromFS("/", files) })
	return router.Run(webConfig.Host + ":" + webConfig.Port)
}

func apiConfig(c *gin.Context) {
	result := map[string]any{}
	for _, entry := range models {
		result[entry.name] = gin.H{"description": entry.description, "schedule": entry.schedule, "schedule_info": entry.schedule.String()}
	}
	c.JSON(200, gin.H{"models": result})
}

func apiPerform(c *gin.Context) {
	var parameters struct {
		Model string `form:"model" json:"model" binding:"required"`
	}
	if err := c.Bind(&parameters); err != nil {
		logger.errorf("Bind error: %v", err)
	}
	entry := modelByName(parameters.Model)
	if entry == nil {
		_ = c.AbortWithError(404, fmt.Errorf("Model: \"%s\" not found", parameters.Model))
		return
	}
	go func() {
		if err := perform(*entry); err != nil {
			logger.errorf("Perform error: %v", err)
		}
	}()
	c.JSON(200, gin.H{"message": fmt.Sprintf("Backup: %s performed in background.", parameters.Model)})
}

func apiList(c *gin.Context) {
	entry := modelByName(c.Query("model"))
	if entry == nil {
		_ = c.AbortWithError(404, fmt.Errorf("Model: \"%s\" not found", c.Query("model")))
		return
	}
	files, err := listStorage(*entry, c.Query("parent"))
	if err != nil {
		_ = c.AbortWithError(500, err)
		return
	}
	c.JSON(200, gin.H{"files": files})
}

func apiDownload(c *gin.Context) {
	entry := modelByName(c.Query("model"))
	if entry == nil {
		_ = c.AbortWithError(404, fmt.Errorf("Model: \"%s\" not found", c.Query("model")))
		return
	}
	file := c.Query("path")
	if file == "" {
		_ = c.AbortWithError(404, fmt.Errorf("File not found"))
		return
	}
	url, err := downloadURL(*entry, file)
	if err != nil || url == "" {
		_ = c.AbortWithError(500, err)
		return
	}
	c.Redirect(302, url)
}

// apiLog streams the log file from its last 50 lines on.
func apiLog(c *gin.Context) {
	lines := make(chan string)
	file := fls.LineFile(logFile)
	if _, err := file.SeekLine(-50, io.SeekEnd); err != nil {
		logger.errorf("Failed to seek log file: %v", err)
	}
	reader := bufio.NewReader(file)
	go func() {
		for {
			line, _, _ := reader.ReadLine()
			if len(line) == 0 {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			lines <- string(line)
		}
	}()
	gone := c.Request.Context().Done()
	c.Stream(func(w io.Writer) bool {
		select {
		case <-gone:
			println("Client gone, close stream.")
			return false
		case line := <-lines:
			if _, err := c.Writer.WriteString(line + "\n"); err != nil {
				logger.errorf("Failed to write to stream: %v", err)
			}
			c.Writer.Flush()
			return true
		}
	})
}
