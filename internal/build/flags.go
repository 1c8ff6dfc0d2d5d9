package build

// SuboptFlag is one of mkfs.xfs's sub-option flags (-b size=4k, -d
// agcount=4, ...) with its long alias and help text. mkfs and estimate
// take the same geometry options through this one table.
type SuboptFlag struct {
	Class byte
	Long  string
	Usage string
}

// SuboptFlags lists the sub-option flags in mkfs.xfs's table order, the
// order in which they are applied.
var SuboptFlags = []SuboptFlag{
	{'b', "block", "block size: size=N"},
	{'d', "data", "data section: agcount=N,agsize=N,file,name=F,size=N,sunit=N,swidth=N,su=N,sw=N,noalign,sectsize=N,projinherit=N,extszinherit=N,cowextsize=N,rtinherit,daxinherit"},
	{'i', "inode", "inodes: size=N,perblock=N,maxpct=N,align=0|1,sparse=0|1,nrext64=0|1,attr=2,projid32bit=1"},
	{'l', "log", "internal log: size=N,agnum=N,sunit=N,su=N,version=2,internal,lazy-count=1"},
	{'m', "metadata", "features: crc=1,finobt=0|1,rmapbt=0|1,reflink=0|1,inobtcount=0|1,bigtime=0|1,uuid=UUID"},
	{'n', "naming", "directories: size=N,version=2|ci,ftype=1"},
	{'s', "sector", "sector size: size=N"},
	{'r', "realtime", "realtime: extsize=N (realtime devices are not supported)"},
	{'c', "config", "configuration file (not supported)"},
}

// ParseSuboptFlags applies the values given for each flag (by class, in
// command-line order) in table order, as mkfs.xfs does.
func (o *Options) ParseSuboptFlags(values map[byte][]string) error {
	for _, f := range SuboptFlags {
		for _, v := range values[f.Class] {
			if err := o.ParseSubopts(f.Class, v); err != nil {
				return err
			}
		}
	}
	return nil
}
