-- Sample databases of the development stack: SalesDemo (dbo.Customers,
-- dbo.Orders) and InventoryDemo (dbo.Products). Run after SQL Server is up:
--   sqlcmd -S localhost -U sa -C -b -i sample-databases.sql
-- It creates only what is missing, so running it again changes nothing. It
-- PRINTs "created database <name>" for each database it creates and nothing
-- else (NOCOUNT hides the row counts); the deployment reads that to report a
-- change.
SET NOCOUNT ON;
GO

IF DB_ID(N'SalesDemo') IS NULL
BEGIN
    CREATE DATABASE [SalesDemo];
    PRINT 'created database SalesDemo';
END
GO

-- A database is used in a batch of its own: SQL Server resolves USE when it
-- compiles the batch, before a CREATE DATABASE in the same batch has run.
USE [SalesDemo];
GO

IF OBJECT_ID(N'dbo.Customers', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.Customers (
        Id INT NOT NULL PRIMARY KEY,
        Name NVARCHAR(100) NOT NULL,
        City NVARCHAR(100) NOT NULL
    );
    INSERT INTO dbo.Customers (Id, Name, City) VALUES
        (1, N'Contoso', N'Seattle'),
        (2, N'Fabrikam', N'Berlin'),
        (3, N'Northwind', N'Oslo'),
        (4, N'Adventure Works', N'Lyon'),
        (5, N'Tailspin', N'Porto');
END
GO

IF OBJECT_ID(N'dbo.Orders', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.Orders (
        Id INT NOT NULL PRIMARY KEY,
        CustomerId INT NOT NULL REFERENCES dbo.Customers (Id),
        Amount DECIMAL(10, 2) NOT NULL
    );
    INSERT INTO dbo.Orders (Id, CustomerId, Amount) VALUES
        (1, 2, 10.01),
        (2, 3, 20.02),
        (3, 4, 30.03),
        (4, 5, 40.04),
        (5, 1, 50.05),
        (6, 2, 60.06),
        (7, 3, 70.07),
        (8, 4, 80.08),
        (9, 5, 90.09),
        (10, 1, 100.10),
        (11, 2, 110.11),
        (12, 3, 120.12),
        (13, 4, 130.13),
        (14, 5, 140.14),
        (15, 1, 150.15),
        (16, 2, 160.16),
        (17, 3, 170.17),
        (18, 4, 180.18),
        (19, 5, 190.19),
        (20, 1, 200.20),
        (21, 2, 210.21),
        (22, 3, 220.22),
        (23, 4, 230.23),
        (24, 5, 240.24),
        (25, 1, 250.25),
        (26, 2, 260.26),
        (27, 3, 270.27),
        (28, 4, 280.28),
        (29, 5, 290.29),
        (30, 1, 300.30),
        (31, 2, 310.31),
        (32, 3, 320.32),
        (33, 4, 330.33),
        (34, 5, 340.34),
        (35, 1, 350.35),
        (36, 2, 360.36),
        (37, 3, 370.37),
        (38, 4, 380.38),
        (39, 5, 390.39),
        (40, 1, 400.40);
END
GO

IF DB_ID(N'InventoryDemo') IS NULL
BEGIN
    CREATE DATABASE [InventoryDemo];
    PRINT 'created database InventoryDemo';
END
GO

USE [InventoryDemo];
GO

IF OBJECT_ID(N'dbo.Products', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.Products (
        Sku NVARCHAR(20) NOT NULL PRIMARY KEY,
        Stock INT NOT NULL
    );
    INSERT INTO dbo.Products (Sku, Stock) VALUES
        (N'SKU-001', 7),
        (N'SKU-002', 14),
        (N'SKU-003', 21),
        (N'SKU-004', 28),
        (N'SKU-005', 35),
        (N'SKU-006', 42),
        (N'SKU-007', 49),
        (N'SKU-008', 56),
        (N'SKU-009', 63),
        (N'SKU-010', 70),
        (N'SKU-011', 77),
        (N'SKU-012', 84);
END
GO
